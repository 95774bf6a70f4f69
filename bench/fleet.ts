/**
 * A fleet on one Redis: what one instance's writes cost the others. One
 * writing instance and N idle ones (N = 0, 2, 6), each a Node process with
 * its own store (bench/fleet/instance.ts). Every idle instance makes and
 * reads its own 50 sessions, so it caches and tracks them, and none of the
 * written ones. The writer makes 400 sessions, then writes each 10 times
 * (a cache-hit read and a one-field flush, 32 at once).
 *
 * For the write phase only: the writer's CPU per write, the idle instances'
 * (each child's `process.cpuUsage()` between a start and a stop message)
 * and Redis's (INFO cpu). Each tracking mode the store accepts runs, in
 * interleaved rounds; figures are medians over the rounds.
 *
 * On its own: `npx tsx bench/fleet.ts` (BENCH_QUICK=1 for a smoke run;
 * BENCH_FLEET_MODES=keys,broadcast to choose the modes).
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Redis } from "ioredis"
import { type ChildProcess, fork } from "node:child_process"
import { resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as SessionConfig from "../src/SessionConfig.js"
import { rotate } from "./compare.js"
import type { Reply, Request, Role } from "./fleet/protocol.js"
import { type BenchRedis, startRedis } from "./redis.js"
import { log, median, quick } from "./stats.js"

export type FleetMode = "keys" | "broadcast"

interface ModeSpec {
  readonly mode: FleetMode
  readonly label: string
  /** The `cache` settings to try, in order: the first the store's Schema accepts is used. */
  readonly settings: ReadonlyArray<Readonly<Record<string, unknown>>>
}

const modeSpecs: ReadonlyArray<ModeSpec> = [
  { mode: "keys", label: "per-key tracking", settings: [{ tracking: "keys" }] },
  // Before issue 21, `tracking: true` meant BCAST. It stands in for "broadcast" only where the store
  // does not know that name, and only if Redis then says the instances broadcast (checked below).
  { mode: "broadcast", label: "broadcast (BCAST)", settings: [{ tracking: "broadcast" }, { tracking: true }] }
]

/** One write phase with a given number of idle instances. */
export interface FleetRun {
  readonly idle: number
  readonly writes: number
  readonly wallMs: number
  readonly writerCpuPerWriteUs: number
  /** The idle instances' CPU per write, summed over them (0 without any). */
  readonly idleCpuPerWriteUs: number
  /** The same, instance by instance. */
  readonly idleCpuPerWriteByInstanceUs: ReadonlyArray<number>
  readonly redisCpuPerWriteUs: number
  /** The writer's cache over the phase: its reads should all be hits. */
  readonly writerHits: number
  readonly writerMisses: number
  /** Entries the idle instances dropped because Redis announced a change: none of theirs was written. */
  readonly idleInvalidations: number
  /** Entries the idle instances held at the end (their own sessions, all of them if nothing was lost). */
  readonly idleCached: number
  /** INFO stats when the phase started: keys in Redis's tracking table, and (key, client) pairs. */
  readonly trackingTotalKeys: number
  readonly trackingTotalItems: number
  /**
   * With the most idle instances only: the same figures over a window as long as the write phase,
   * right after it, with nobody writing, divided by the same number of writes. The floor the
   * per-write figures stand on: the time alone, the start and stop messages, V8's background threads.
   */
  readonly quiet?: { readonly idleCpuPerWriteUs: number; readonly redisCpuPerWriteUs: number }
}

/** Medians over the rounds for one number of idle instances. */
export interface FleetSummary {
  readonly idle: number
  readonly writerCpuPerWriteUs: number
  readonly idleCpuPerWriteUs: number
  /** The idle instances' CPU per write, per instance (sum ÷ N). */
  readonly idleCpuPerWritePerInstanceUs: number
  readonly redisCpuPerWriteUs: number
  /** Idle instances' CPU per write ÷ the writer's (target ≤ 0.05). */
  readonly idleCpuVsWriter: number | null
  /** Redis CPU per write ÷ the same with the writer alone (target at 6 ≤ 1.15). */
  readonly redisCpuVsAlone: number | null
  readonly spread: {
    readonly writerCpuPerWriteUs: readonly [min: number, max: number]
    readonly idleCpuPerWriteUs: readonly [min: number, max: number]
    readonly redisCpuPerWriteUs: readonly [min: number, max: number]
  }
}

export interface FleetModeResults {
  readonly mode: FleetMode
  readonly label: string
  /** The `cache` settings the store ran with. */
  readonly setting: string
  /** What Redis's CLIENT LIST showed with every instance open: how many clients track, and how. */
  readonly redisSaw: { readonly trackingClients: number; readonly broadcastClients: number }
  readonly byIdle: ReadonlyArray<FleetSummary>
  readonly perRound: ReadonlyArray<ReadonlyArray<FleetRun>>
}

export interface FleetResults {
  readonly writerSessions: number
  readonly writesPerSession: number
  readonly concurrency: number
  readonly idleSessions: number
  readonly idleCounts: ReadonlyArray<number>
  readonly rounds: number
  readonly modes: ReadonlyArray<FleetModeResults>
  readonly skipped: ReadonlyArray<{ readonly mode: FleetMode; readonly reason: string }>
}

const idleCounts = [0, 2, 6] as const
const maxIdle = Math.max(...idleCounts)
const writerSessions = 400
const idleSessions = 50
const concurrency = 32
const writesPerSession = quick ? 3 : 10
const rounds = quick ? 1 : 3

// --- child processes ---

interface Instance {
  readonly role: Role
  readonly call: <T extends Reply["type"]>(request: Request, expect: T) => Promise<Extract<Reply, { type: T }>>
  readonly stop: () => Promise<void>
}

const entry = fileURLToPath(new URL("./fleet/instance.ts", import.meta.url))
const children = new Set<ChildProcess>()

process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL")
})

const spawnInstance = (role: Role, redis: BenchRedis): Promise<Instance> =>
  new Promise((ready, fail) => {
    const child = fork(entry, [role], {
      env: { ...process.env, BENCH_REDIS_SERVER: redis.server },
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    children.add(child)
    // Replies come in the order of the requests: one waiting caller per request.
    const waiting: Array<{ readonly answer: (reply: Reply) => void; readonly reject: (error: Error) => void }> = []
    let exited: Error | undefined
    const guard = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.once("exit", (code, signal) => {
      clearTimeout(guard)
      children.delete(child)
      exited = new Error(`fleet ${role} instance exited (${signal ?? code})`)
      for (const w of waiting.splice(0)) w.reject(exited)
      fail(exited)
    })
    const call = <T extends Reply["type"]>(request: Request, expect: T) =>
      new Promise<Extract<Reply, { type: T }>>((answer, reject) => {
        if (exited !== undefined) return reject(exited)
        waiting.push({
          answer: (reply) =>
            reply.type === expect
              ? answer(reply as Extract<Reply, { type: T }>)
              : reject(new Error(reply.type === "failed" ? reply.message : `expected ${expect}, got ${reply.type}`)),
          reject
        })
        child.send(request)
      })
    const stop = () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done()
        child.once("exit", () => done())
        child.disconnect()
      })
    child.once("message", (first) => {
      clearTimeout(guard)
      child.on("message", (reply) => waiting.shift()?.answer(reply as Reply))
      if ((first as Reply).type === "ready") ready({ role, call, stop })
      else fail(new Error(`fleet ${role} instance did not start: ${JSON.stringify(first)}`))
    })
  })

// --- Redis's side ---

const info = async (raw: Redis, section: string): Promise<Record<string, string>> => {
  const fields: Record<string, string> = {}
  for (const line of (await raw.info(section)).split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return fields
}

/** Redis's CPU time so far, user + system, in µs (getrusage, so finer than /proc's clock ticks). */
const redisCpuUs = async (raw: Redis): Promise<number> => {
  const cpu = await info(raw, "cpu")
  return (Number(cpu["used_cpu_user"]) + Number(cpu["used_cpu_sys"])) * 1e6
}

/** CLIENT LIST flags: `t` tracks keys, `B` in broadcast mode. */
const trackingClients = async (raw: Redis) => {
  const list = String(await raw.client("LIST"))
  let trackingClients = 0
  let broadcastClients = 0
  for (const match of list.matchAll(/ flags=(\S*)/g)) {
    if (match[1]!.includes("t")) trackingClients++
    if (match[1]!.includes("B")) broadcastClients++
  }
  return { trackingClients, broadcastClients }
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms))

// --- one measurement ---

interface Fleet {
  readonly writer: Instance
  readonly idle: ReadonlyArray<Instance>
}

const measure = async (
  fleet: Fleet,
  raw: Redis,
  cache: Readonly<Record<string, unknown>>,
  idleCount: number,
  writes: number,
  withQuiet: boolean
): Promise<{ readonly run: FleetRun; readonly saw: FleetModeResults["redisSaw"] }> => {
  const idle = fleet.idle.slice(0, idleCount)
  const all = [fleet.writer, ...idle]
  try {
    // The writer warms up (one write per session) before the idle instances are there to hear it.
    await fleet.writer.call({ type: "open", cache, sessions: writerSessions, warmUpWrites: writerSessions }, "opened")
    await Promise.all(
      idle.map((i) => i.call({ type: "open", cache, sessions: idleSessions, warmUpWrites: 0 }, "opened"))
    )
    // Let V8's background compilation of what the opening ran finish before anything is counted.
    await sleep(100)
    const saw = await trackingClients(raw)
    const stats = await info(raw, "stats")
    await Promise.all(idle.map((i) => i.call({ type: "start" }, "started")))
    const redisBefore = await redisCpuUs(raw)
    const wallStart = performance.now()
    const wrote = await fleet.writer.call({ type: "write", writes, concurrency }, "wrote")
    // Each idle instance reads what is left on its sockets before it answers (see instance.ts).
    const stopped = await Promise.all(idle.map((i) => i.call({ type: "stop" }, "stopped")))
    const redisUs = (await redisCpuUs(raw)) - redisBefore
    const wallMs = performance.now() - wallStart
    let quiet: FleetRun["quiet"]
    if (withQuiet) {
      // As long as the write phase took, with nobody writing.
      await Promise.all(idle.map((i) => i.call({ type: "start" }, "started")))
      const redisQuietBefore = await redisCpuUs(raw)
      await sleep(wrote.wallUs / 1000)
      const quietIdle = await Promise.all(idle.map((i) => i.call({ type: "stop" }, "stopped")))
      const quietRedisUs = (await redisCpuUs(raw)) - redisQuietBefore
      quiet = {
        idleCpuPerWriteUs: quietIdle.reduce((s, r) => s + r.cpuUs, 0) / writes,
        redisCpuPerWriteUs: quietRedisUs / writes
      }
    }
    const byInstance = stopped.map((r) => r.cpuUs / writes)
    const run: FleetRun = {
      idle: idleCount,
      writes,
      wallMs,
      writerCpuPerWriteUs: wrote.cpuUs / writes,
      idleCpuPerWriteUs: byInstance.reduce((s, x) => s + x, 0),
      idleCpuPerWriteByInstanceUs: byInstance,
      redisCpuPerWriteUs: redisUs / writes,
      writerHits: wrote.cache.hits,
      writerMisses: wrote.cache.misses,
      idleInvalidations: stopped.reduce((s, r) => s + r.cache.invalidations, 0),
      idleCached: stopped.reduce((s, r) => s + r.cache.size, 0),
      trackingTotalKeys: Number(stats["tracking_total_keys"] ?? Number.NaN),
      trackingTotalItems: Number(stats["tracking_total_items"] ?? Number.NaN),
      ...(quiet === undefined ? {} : { quiet })
    }
    return { run, saw }
  } finally {
    await Promise.all(all.map((i) => i.call({ type: "close" }, "closed")))
  }
}

// --- modes, rounds, summary ---

/** The first of `spec`'s settings that the store's own Schema accepts, or why none is. */
const acceptedSetting = (spec: ModeSpec, redis: BenchRedis) => {
  const reasons: Array<string> = []
  for (const cache of spec.settings) {
    const decoded = Effect.runSync(Effect.either(SessionConfig.decode({ server: redis.server, cache })))
    if (Either.isRight(decoded)) return Either.right(cache)
    reasons.push(`${JSON.stringify(cache)}: ${decoded.left.message}`)
  }
  return Either.left(`the store rejects ${reasons.join("; ")}`)
}

const range = (values: ReadonlyArray<number>): readonly [number, number] => [
  Math.min(...values),
  Math.max(...values)
]

const summarize = (idle: number, runs: ReadonlyArray<FleetRun>, alone: number): FleetSummary => {
  const med = (f: (r: FleetRun) => number) => median(runs.map(f))
  const writer = med((r) => r.writerCpuPerWriteUs)
  const idleCpu = med((r) => r.idleCpuPerWriteUs)
  const redisCpu = med((r) => r.redisCpuPerWriteUs)
  return {
    idle,
    writerCpuPerWriteUs: writer,
    idleCpuPerWriteUs: idleCpu,
    idleCpuPerWritePerInstanceUs: idle === 0 ? 0 : med((r) => r.idleCpuPerWriteUs / idle),
    redisCpuPerWriteUs: redisCpu,
    idleCpuVsWriter: idle === 0 ? null : idleCpu / writer,
    redisCpuVsAlone: Number.isFinite(alone) && alone > 0 ? redisCpu / alone : null,
    spread: {
      writerCpuPerWriteUs: range(runs.map((r) => r.writerCpuPerWriteUs)),
      idleCpuPerWriteUs: range(runs.map((r) => r.idleCpuPerWriteUs)),
      redisCpuPerWriteUs: range(runs.map((r) => r.redisCpuPerWriteUs))
    }
  }
}

const us = (v: number) => `${v.toFixed(v < 10 ? 2 : 1)} µs`
const pct = (v: number | null) => (v === null ? "–" : `${(v * 100).toFixed(1)}%`)

const runLine = (round: number, mode: FleetMode, r: FleetRun): string =>
  `    round ${round + 1} ${mode.padEnd(9)} ${r.idle} idle: writer ${us(r.writerCpuPerWriteUs)}, idle ${
    us(r.idleCpuPerWriteUs)
  }, Redis ${us(r.redisCpuPerWriteUs)} per write; ${
    r.wallMs.toFixed(0)
  } ms; writer ${r.writerHits} hits ${r.writerMisses} misses; idle ${r.idleInvalidations} invalidations, ${r.idleCached} cached; tracking table ${r.trackingTotalKeys} keys ${r.trackingTotalItems} items${
    r.quiet === undefined
      ? ""
      : `; with nobody writing: idle ${us(r.quiet.idleCpuPerWriteUs)}, Redis ${
        us(r.quiet.redisCpuPerWriteUs)
      } per write`
  }`

/** The console table for one mode. */
export const fleetTable = (m: FleetModeResults): string => {
  const header = `    ${
    [
      "idle".padStart(4),
      "writer CPU/write".padStart(16),
      "idle CPU/write".padStart(14),
      "per instance".padStart(12),
      "idle ÷ writer".padStart(13),
      "Redis CPU/write".padStart(15),
      "Redis ÷ alone".padStart(13)
    ].join("  ")
  }`
  const rows = m.byIdle.map((s) =>
    `    ${
      [
        String(s.idle).padStart(4),
        us(s.writerCpuPerWriteUs).padStart(16),
        (s.idle === 0 ? "–" : us(s.idleCpuPerWriteUs)).padStart(14),
        (s.idle === 0 ? "–" : us(s.idleCpuPerWritePerInstanceUs)).padStart(12),
        pct(s.idleCpuVsWriter).padStart(13),
        us(s.redisCpuPerWriteUs).padStart(15),
        (s.redisCpuVsAlone === null ? "–" : `${s.redisCpuVsAlone.toFixed(2)}×`).padStart(13)
      ].join("  ")
    }`
  )
  return [
    `  ${m.label}, cache ${m.setting}; Redis saw ${m.redisSaw.trackingClients} tracking clients, ${m.redisSaw.broadcastClients} in BCAST`,
    header,
    ...rows
  ].join("\n")
}

const selectedModes = (): ReadonlyArray<ModeSpec> => {
  const wanted = process.env["BENCH_FLEET_MODES"]?.split(",").map((s) => s.trim()).filter((s) => s !== "")
  return wanted === undefined ? modeSpecs : modeSpecs.filter((s) => wanted.includes(s.mode))
}

export const runFleet = async (redis: BenchRedis, step = ""): Promise<FleetResults> => {
  const writes = writerSessions * writesPerSession
  log(
    `\n${step}Fleet on one Redis: 1 writer (${writerSessions} sessions, ${writes} cache-hit reads + one-field flushes, ${concurrency} at once) and ${
      idleCounts.join(", ")
    } idle instances (${idleSessions} sessions each), one process each; ${rounds} interleaved round${
      rounds === 1 ? "" : "s"
    } after a warm-up`
  )
  const raw = new Redis({ host: redis.host, port: redis.port })
  const instances: Array<Instance> = []
  try {
    // One process per instance for the whole run; each measurement opens and closes their stores.
    instances.push(
      ...await Promise.all([
        spawnInstance("writer", redis),
        ...Array.from({ length: maxIdle }, () => spawnInstance("idle", redis))
      ])
    )
    const fleet: Fleet = { writer: instances[0]!, idle: instances.slice(1) }
    const skipped: Array<{ mode: FleetMode; reason: string }> = []
    const skip = (mode: FleetMode, reason: string) => {
      skipped.push({ mode, reason })
      log(`    ${mode}: skipped (${reason})`)
    }
    // Each mode's warm-up run (discarded) also checks that Redis sees what the mode says.
    const accepted: Array<
      { spec: ModeSpec; cache: Readonly<Record<string, unknown>>; saw: FleetModeResults["redisSaw"] }
    > = []
    for (const spec of selectedModes()) {
      const setting = acceptedSetting(spec, redis)
      if (Either.isLeft(setting)) {
        skip(spec.mode, setting.left)
        continue
      }
      const cache = setting.right
      let warm: Awaited<ReturnType<typeof measure>>
      try {
        // Every run warms its writer up itself (see `measure`): this one is short.
        warm = await measure(fleet, raw, cache, maxIdle, writerSessions, false)
      } catch (error) {
        skip(spec.mode, `the store failed with ${JSON.stringify(cache)}: ${String(error)}`)
        continue
      }
      const broadcasting = warm.saw.broadcastClients > 0
      if (warm.saw.trackingClients < 1 + maxIdle || broadcasting !== (spec.mode === "broadcast")) {
        skip(
          spec.mode,
          `with ${
            JSON.stringify(cache)
          } Redis saw ${warm.saw.trackingClients} tracking clients, ${warm.saw.broadcastClients} in BCAST`
        )
        continue
      }
      accepted.push({ spec, cache, saw: warm.saw })
    }
    const perRound = accepted.map(() => [] as Array<Array<FleetRun>>)
    for (let round = 0; round < rounds; round++) {
      for (const [m] of rotate(accepted.map((a, i) => [i, a] as const), round)) {
        const runs: Array<FleetRun> = []
        for (const idle of rotate(idleCounts, round)) {
          const { run } = await measure(fleet, raw, accepted[m]!.cache, idle, writes, idle === maxIdle)
          log(runLine(round, accepted[m]!.spec.mode, run))
          runs.push(run)
        }
        runs.sort((a, b) => a.idle - b.idle)
        perRound[m]!.push(runs)
      }
    }
    const modes = accepted.map(({ cache, saw, spec }, m): FleetModeResults => {
      const runsWith = (idle: number) => perRound[m]!.map((runs) => runs.find((r) => r.idle === idle)!)
      const alone = median(runsWith(0).map((r) => r.redisCpuPerWriteUs))
      return {
        mode: spec.mode,
        label: spec.label,
        setting: JSON.stringify(cache),
        redisSaw: saw,
        byIdle: idleCounts.map((idle) => summarize(idle, runsWith(idle), alone)),
        perRound: perRound[m]!
      }
    })
    for (const m of modes) log(fleetTable(m))
    return {
      writerSessions,
      writesPerSession,
      concurrency,
      idleSessions,
      idleCounts,
      rounds,
      modes,
      skipped
    }
  } finally {
    await Promise.allSettled([...instances.map((i) => i.stop()), raw.quit()])
  }
}

const standalone = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href

if (standalone) {
  const started = Date.now()
  startRedis().then(async (redis) => {
    try {
      await runFleet(redis)
      log(`\nfleet workload took ${Math.round((Date.now() - started) / 1000)} s`)
    } finally {
      await redis.stop()
    }
  }).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(
        `fleet bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`
      )
      process.exit(1)
    }
  )
}
