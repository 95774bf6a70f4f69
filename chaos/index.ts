/**
 * `npm run chaos`: a reliability run the project reproduces itself.
 *
 * Starts a private redis-server (loopback, free port, AOF with `appendfsync
 * always`, data in a temp dir) and two instances of the demo app on it, drives
 * cookie-holding clients against both while Redis is killed and restarted,
 * frozen and thawed, and its clients killed, fuzzes cookies and bodies, then
 * checks every acknowledged count against Redis and writes docs/reliability.md.
 *
 * Then two scenarios (chaos/scenarios.ts): "sign out everywhere" racing a
 * login on the other instance, and aborted writes under a frozen Redis.
 *
 * CHAOS_QUICK=1: a ≤ 45 s smoke run; the report goes to a temp file, and the
 * exit code says whether any promise was broken.
 * CHAOS_DEBUG=1: also prints each request that got no response, and the last
 * requests of each client whose session vanished.
 */
import * as Duration from "effect/Duration"
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { writeFileSync } from "node:fs"
import * as os from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SessionConfig from "../src/SessionConfig.js"
import * as RedisServer from "../test/support/RedisServer.js"
import * as Faults from "./faults.js"
import { finalCheck } from "./finalCheck.js"
import * as Fuzz from "./fuzz.js"
import { closeAgents, request } from "./http.js"
import * as Instances from "./instances.js"
import * as Load from "./load.js"
import { emptyFindings } from "./model.js"
import { markdown, verdict } from "./report.js"
import * as Scenarios from "./scenarios.js"

const quick = process.env["CHAOS_QUICK"] === "1"
const settings = quick
  ? {
    loadMs: 30_000,
    clients: 64,
    maxRequestsPerClient: 1_000,
    plan: Faults.quickPlan,
    victims: 4,
    races: 20,
    abortRounds: 5
  }
  : {
    loadMs: 150_000,
    clients: 64,
    maxRequestsPerClient: 5_000,
    plan: Faults.fullPlan,
    victims: 8,
    races: 200,
    abortRounds: 25
  }
// Aborted writes per round: reached and abandoned well within commandTimeout.
const abortBatch = 200
const thinkMs = [40, 120] as const
// Far above the bound: only a hang ends a request here.
const clientTimeoutMs = 20_000
const reportPath = quick
  ? join(os.tmpdir(), "effect-session-redis-reliability.quick.md")
  : fileURLToPath(new URL("../docs/reliability.md", import.meta.url))

const log = (line: string) => process.stderr.write(`${line}\n`)
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

let stopping = false
let redis: RedisServer.RedisServer | undefined

const cleanup = async () => {
  Instances.killAll()
  closeAgents()
  const r = redis
  redis = undefined
  await r?.stop()
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    stopping = true
    log(`\n${signal}: stopping the app instances and redis-server`)
    void cleanup().finally(() => process.exit(130))
  })
}

const main = async (): Promise<number> => {
  const started = Date.now()
  const secret = randomBytes(32).toString("base64url")
  const redisVersion = execFileSync("redis-server", ["--version"]).toString().match(/v=(\S+)/)?.[1] ?? "unknown"
  redis = await RedisServer.start({
    // Later arguments win: persistence on, every write fsynced before it is acknowledged.
    args: ["--appendonly", "yes", "--appendfsync", "always", "--loglevel", "warning"]
  })
  const server = redis
  // The store's own settings, as the demo app builds them: the bound follows its defaults.
  const config = SessionConfig.decodeSync({ url: server.url })
  const commandTimeoutMs = Duration.toMillis(config.commandTimeout)
  const backoffMs = 1_000
  const allowanceMs = 1_000
  const boundMs = commandTimeoutMs + backoffMs + allowanceMs
  log(
    `redis-server ${redisVersion} on ${server.server} (AOF, appendfsync always)${quick ? ", CHAOS_QUICK run" : ""}`
  )

  const instances = [
    await Instances.start("A", server.url, secret),
    await Instances.start("B", server.url, secret)
  ] as const
  log(`app instances: A on :${instances[0].port}, B on :${instances[1].port}`)

  // Victims for the fuzzer: real sessions with a user and a count it must never reach.
  const victims: Array<Fuzz.Victim> = []
  for (let i = 0; i < settings.victims; i++) {
    const name = `victim-${i}`
    const port = instances[i % 2]!.port
    const login = await request(port, {
      method: "POST",
      path: "/login",
      body: JSON.stringify({ name }),
      timeoutMs: clientTimeoutMs
    })
    if (login.status !== 200 || typeof login.sid !== "string") {
      throw new Error(`victim login answered ${login.status} ${login.body}`)
    }
    let visits = 0
    for (let n = 0; n < 3; n++) {
      const reply = await request(port, {
        method: "GET",
        path: "/",
        cookie: `sid=${login.sid}`,
        timeoutMs: clientTimeoutMs
      })
      visits = (JSON.parse(reply.body) as { visits: number }).visits
    }
    victims.push({ name, cookie: login.sid, id: login.sid.slice(0, login.sid.lastIndexOf(".")), visits })
  }

  const findings = emptyFindings()
  const samples: Array<Load.Sample> = []
  const faults: Array<Faults.Fault> = []
  const fuzzOutcomes: Array<Fuzz.FuzzOutcome> = []
  const crashed: Array<string> = []
  const loadStart = Date.now()
  const deadline = loadStart + settings.loadMs
  let loadDone = false
  log(`load: ${settings.clients} clients for ${settings.loadMs / 1000} s; faults: ${settings.plan.length}`)

  const control = server.client({ maxRetriesPerRequest: 3 })
  const chaos = (async () => {
    for (const planned of settings.plan) {
      const wait = loadStart + planned.atMs - Date.now()
      if (wait > 0) await sleep(wait)
      if (stopping || loadDone) return
      // Recorded before it starts, so that requests overlapping it are attributed to it.
      const pending: Faults.Fault = {
        kind: planned.kind,
        detail: "",
        startedAt: Date.now(),
        endedAt: Number.POSITIVE_INFINITY,
        killed: 0
      }
      faults.push(pending)
      const done = await Faults.run(server, control, planned)
      Object.assign(pending, { detail: done.detail, endedAt: done.endedAt, killed: done.killed })
      log(
        `  +${((pending.startedAt - loadStart) / 1000).toFixed(1)} s ${planned.kind}: ${pending.detail}${
          planned.kind.startsWith("CLIENT") || planned.kind === "storm" ? ` (${pending.killed} connections)` : ""
        }`
      )
    }
  })()

  const fuzzing = (async () => {
    // Two fuzzers, one per instance, paced like the clients.
    await Promise.all(instances.map(async (instance) => {
      while (!loadDone && !stopping && Date.now() < deadline) {
        const fuzzCase = Fuzz.randomCase(victims, secret)
        fuzzOutcomes.push(await Fuzz.send(instance.port, fuzzCase, clientTimeoutMs))
        await sleep(20 + Math.random() * 60)
      }
    }))
  })()

  const models = await Load.run(
    instances,
    {
      clients: settings.clients,
      deadline,
      maxRequestsPerClient: settings.maxRequestsPerClient,
      timeoutMs: clientTimeoutMs,
      thinkMs,
      stopped: () => stopping,
      // A failure during a fault may take effect until the fault is over, plus the bound.
      settledAt: (t: number) =>
        faults.reduce(
          (until, f) => f.startedAt <= t && t <= f.endedAt + boundMs ? Math.max(until, f.endedAt + boundMs) : until,
          t + boundMs
        )
    },
    findings,
    samples
  )
  loadDone = true
  await Promise.all([chaos, fuzzing])
  const loadMs = Date.now() - loadStart
  log(`load done: ${samples.length} requests, ${fuzzOutcomes.length} fuzz cases in ${(loadMs / 1000).toFixed(1)} s`)

  const raceStarted = Date.now()
  const race = await Scenarios.regenerateRace(instances, server, config.prefix, settings.races)
  log(
    `regenerate vs sign-out-everywhere: ${race.trials} races, ${race.revived} revived sessions (${
      ((Date.now() - raceStarted) / 1000).toFixed(1)
    } s)`
  )
  const abortsStarted = Date.now()
  const aborts = await Scenarios.abortedWrites(instances[0], server, settings.abortRounds, abortBatch)
  log(
    `aborted writes under a frozen Redis: ${aborts.requests}, heap ${
      ((aborts.heapAfter - aborts.heapBefore) / 1048576).toFixed(2)
    } MiB, ${aborts.fibersLeft} fibers left (${((Date.now() - abortsStarted) / 1000).toFixed(1)} s)`
  )

  for (const instance of instances) {
    if (instance.crashed() !== undefined) crashed.push(`${instance.name}: ${instance.crashed()}`)
  }
  for (const instance of instances) await instance.stop()
  // The acknowledged counts must survive one more crash: AOF with fsync always is the promise's premise.
  await server.kill()
  await server.restart()
  const check = await finalCheck(server, config.prefix, models, victims, findings.resets)

  const result = {
    quick,
    date: new Date().toISOString().slice(0, 10),
    durationS: Math.round((Date.now() - started) / 1000),
    loadMs,
    loadStart,
    node: process.version,
    redis: redisVersion,
    cpus: os.cpus().length,
    loadAverage: os.loadavg()[0]!.toFixed(2),
    clients: settings.clients,
    thinkMs,
    commandTimeoutMs,
    backoffMs,
    allowanceMs,
    boundMs,
    samples,
    faults,
    findings,
    fuzz: fuzzOutcomes,
    check,
    crashed,
    race,
    aborts
  }
  if (process.env["CHAOS_DEBUG"] === "1") {
    for (const s of samples.filter((s) => s.status === 0)) {
      log(
        `no response: ${s.kind} on ${s.instance} at +${s.startedAt - loadStart} ms after ${
          s.ms.toFixed(0)
        } ms: ${s.error}`
      )
    }
    for (const v of check.vanished) {
      log(`vanished: client ${v.reset.client}, stored under the old id: ${v.stored}\n  ${v.reset.recent.join("\n  ")}`)
    }
  }
  const report = markdown(result)
  writeFileSync(reportPath, report)
  const outcome = verdict(result)
  log("")
  for (const line of outcome.summary) log(line)
  log(`report: ${reportPath}`)
  if (outcome.failures.length > 0) {
    log(`FAILED: ${outcome.failures.join("; ")}`)
    return 1
  }
  log("all promises kept")
  return 0
}

main().then(
  async (code) => {
    await cleanup()
    process.exit(code)
  },
  async (error: unknown) => {
    log(`chaos run failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    await cleanup()
    process.exit(2)
  }
)
