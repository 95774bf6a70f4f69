/**
 * Turns the raw figures into `bench/results.json`: ratios, targets (goals,
 * not assertions) and the notes that say how to read them.
 */
import type { CommandCount } from "./commands.js"
import type { FleetMode, FleetResults, FleetRun } from "./fleet.js"
import { type HttpResults, type HttpRun, sessionOverheadUs } from "./httpReadMostly.js"
import type { InvalidationResults } from "./invalidation.js"
import type { LostUpdateResult } from "./lostUpdates.js"
import type { RemoteResults } from "./remote/remoteLatency.js"
import type { StoreResults } from "./store.js"
import type { TrackingTableResults } from "./trackingTable.js"

export interface Raw {
  readonly store: StoreResults
  readonly http: HttpResults
  readonly remote: RemoteResults
  readonly lostUpdates: { readonly ours: LostUpdateResult; readonly expressSession: LostUpdateResult }
  readonly commands: {
    readonly ours: CommandCount
    readonly expressSession: CommandCount
    readonly expressSessionCsc: CommandCount
  }
  readonly invalidation: InvalidationResults
  /** Absent from runs made before the fleet workload existed. */
  readonly fleet?: FleetResults
  readonly trackingTable?: TrackingTableResults
}

export interface Target {
  readonly name: string
  readonly goal: string
  readonly value: number | null
  readonly met: boolean
}

export interface Meta {
  readonly command: string
  readonly quick: boolean
  readonly date: string
  readonly durationS: number
  readonly node: string
  readonly redis: string
  readonly cpus: number
  readonly cpuModel: string
  /** 1-minute load average when the run started and when it ended. */
  readonly loadAverage: { readonly before: number; readonly after: number }
  /** The run started with a load average ≥ `loadLimit`: its figures are not for publishing. */
  readonly underLoad: boolean
  readonly sessionFields: number
  readonly sessionJsonBytes: number
}

export interface Results {
  readonly meta: Meta
  readonly ratios: Record<string, number | null>
  readonly lostUpdates: { readonly ours: number; readonly expressSession: number }
  readonly commandsPerCachedRead: {
    readonly ours: number
    readonly expressSession: number
    readonly expressSessionCsc: number
  }
  readonly invalidation: {
    readonly latencyMedianUs: number
    readonly latencyP99Us: number
    readonly hitRatio: number
  }
  /** Redis's memory per tracked session key (the largest N measured), where the run measured it. */
  readonly trackingTable?: {
    readonly keys: number
    readonly bytesPerTrackedKey: number
    readonly bytesPerAdditionalClient: number
    /** With tracking-table-max-keys below the tracked keys, keys a NOLOOP client was never told had changed. */
    readonly neverAnnouncedWithNoloop: number | null
  }
  /**
   * The headline ratios computed within each interleaved round (the contenders of one round ran
   * back to back), in round order: how far a single round can be off.
   */
  readonly ratioRounds: Record<string, ReadonlyArray<number | null>>
  readonly targets: ReadonlyArray<Target>
  readonly notes: Record<string, string>
  readonly raw: Raw
}

const round = (x: number, digits = 3): number => Number(x.toPrecision(digits + 1))
const finite = (x: number): number | null => (Number.isFinite(x) ? round(x) : null)

/**
 * The load average (1 min) at or above which a run counts as taken on a loaded machine: its figures are
 * marked `underLoad` and the docs say they are not for publishing.
 */
export const loadLimit = 0.7

/** Issue 8's goals. */
const goals: ReadonlyArray<readonly [name: string, goal: string, met: (v: number) => boolean]> = [
  ["ratios.sessionCpuOverheadVsExpress", "≥ 5", (v) => v >= 5],
  ["ratios.sessionOverheadVsExpress", "≥ 5", (v) => v >= 5],
  ["ratios.httpReadMostlyVsExpress", "≥ 1.5", (v) => v >= 1.5],
  ["ratios.missVsRawIoredis", "≤ 1.2", (v) => v <= 1.2],
  ["ratios.flushVsRawIoredis", "≤ 1.3", (v) => v <= 1.3],
  ["ratios.createVsRawIoredis", "≤ 1.3", (v) => v <= 1.3],
  ["ratios.destroyVsRawIoredis", "≤ 1.3", (v) => v <= 1.3],
  ["ratios.hitVsConnectRedisGet", "≥ 50", (v) => v >= 50],
  ["lostUpdates.ours", "= 0", (v) => v === 0],
  ["commandsPerCachedRead.ours", "= 0", (v) => v === 0],
  ["ratios.remoteLatencyP50VsNoSession", "≤ 1.1", (v) => v <= 1.1]
]

/** Issue 21's goals for the fleet, set where the run has the fleet workload. */
const fleetGoals: ReadonlyArray<readonly [name: string, goal: string, met: (v: number) => boolean]> = [
  ["ratios.fleetIdleCpuVsWriter", "≤ 0.05", (v) => v <= 0.05],
  ["ratios.fleetRedisCpuWith6VsAlone", "≤ 1.15", (v) => v <= 1.15]
]

/**
 * The fleet's ratios for one tracking mode, from per-N figures: the idle instances' CPU per write ÷
 * the writer's at the worst N, and Redis's CPU per write with the most idle instances ÷ alone.
 */
const fleetRatios = (
  runs: ReadonlyArray<Pick<FleetRun, "idle" | "idleCpuPerWriteUs" | "writerCpuPerWriteUs" | "redisCpuPerWriteUs">>
) => {
  const most = Math.max(...runs.map((r) => r.idle))
  const alone = runs.find((r) => r.idle === 0)
  const full = runs.find((r) => r.idle === most)
  const idleVsWriter = runs.filter((r) => r.idle > 0).map((r) => r.idleCpuPerWriteUs / r.writerCpuPerWriteUs)
  return {
    idleCpuVsWriter: idleVsWriter.length === 0 ? null : finite(Math.max(...idleVsWriter)),
    redisCpuWith6VsAlone: alone === undefined || full === undefined || most === 0
      ? null
      : finite(full.redisCpuPerWriteUs / alone.redisCpuPerWriteUs)
  }
}

const fleetNames: Record<FleetMode, { readonly idle: string; readonly redis: string }> = {
  keys: { idle: "fleetIdleCpuVsWriter", redis: "fleetRedisCpuWith6VsAlone" },
  broadcast: { idle: "fleetBroadcastIdleCpuVsWriter", redis: "fleetBroadcastRedisCpuWith6VsAlone" }
}

const trackingTableSummary = (t: TrackingTableResults) => {
  const largest = t.sizes.reduce((a, b) => (b.keys > a.keys ? b : a))
  const noloop = t.maxKeys.find((m) => m.noloop)
  return {
    keys: largest.keys,
    bytesPerTrackedKey: largest.trackedBytesPerKey,
    bytesPerAdditionalClient: largest.secondClientBytesPerKey,
    neverAnnouncedWithNoloop: noloop === undefined ? null : noloop.neverAnnounced
  }
}

/** The fleet's ratios (medians over the rounds) and the same within each round. */
const fleetFigures = (fleet: FleetResults | undefined) => {
  const ratios: Record<string, number | null> = {}
  const rounds: Record<string, ReadonlyArray<number | null>> = {}
  if (fleet === undefined) return { ratios, rounds }
  for (const mode of ["keys", "broadcast"] as const) {
    const m = fleet.modes.find((x) => x.mode === mode)
    const names = fleetNames[mode]
    const median = m === undefined ? undefined : fleetRatios(m.byIdle)
    ratios[names.idle] = median?.idleCpuVsWriter ?? null
    ratios[names.redis] = median?.redisCpuWith6VsAlone ?? null
    const perRound = m?.perRound.map(fleetRatios) ?? []
    rounds[names.idle] = perRound.map((r) => r.idleCpuVsWriter)
    rounds[names.redis] = perRound.map((r) => r.redisCpuWith6VsAlone)
  }
  return { ratios, rounds }
}

export const buildResults = (raw: Raw, meta: Meta): Results => {
  const { http, remote, store } = raw
  const fleet = fleetFigures(raw.fleet)
  const s = http.servers
  const r = remote.servers
  const med = (op: keyof StoreResults, key: string) => store[op][key]!.medianUs
  const oursOverhead = sessionOverheadUs(s.ours, s.oursNoSession)
  const expressOverhead = sessionOverheadUs(s.express, s.expressNoSession)
  const cpuOverhead = (withSessions: HttpRun, without: HttpRun) =>
    withSessions.cpuPerRequestUs - without.cpuPerRequestUs
  const oursCpuOverhead = cpuOverhead(s.ours, s.oursNoSession)
  const expressCpuOverhead = cpuOverhead(s.express, s.expressNoSession)
  const expressCscCpuOverhead = cpuOverhead(s.expressCsc, s.expressNoSession)
  const expressOursCpuOverhead = cpuOverhead(s.expressOurs, s.expressNoSession)
  const writeFloorCpuOverhead = cpuOverhead(s.oursWriteFloor, s.oursNoSession)
  const ratios: Record<string, number | null> = {
    hitVsConnectRedisGet: finite(med("hit", "connectRedisGet") / med("hit", "oursEffectLoop")),
    hitVsConnectRedisGetRunPromise: finite(med("hit", "connectRedisGet") / med("hit", "oursRunPromise")),
    hitVsConnectRedisCscGet: finite(med("hit", "connectRedisCscGet") / med("hit", "oursEffectLoop")),
    hitVsRawIoredis: finite(med("hit", "rawIoredisHgetall") / med("hit", "oursEffectLoop")),
    hitVsRawIoredisRunPromise: finite(med("hit", "rawIoredisHgetall") / med("hit", "oursRunPromise")),
    hitSlowdownVsMapGet: finite(med("hit", "oursEffectLoop") / med("hit", "mapGet")),
    missVsRawIoredis: finite(med("miss", "ours") / med("miss", "rawIoredisHgetallDecode")),
    missVsConnectRedisGet: finite(med("miss", "ours") / med("miss", "connectRedisGet")),
    missVsRawIoredisRunPromise: finite(med("miss", "oursRunPromise") / med("miss", "rawIoredisHgetallDecode")),
    flushVsRawIoredis: finite(med("flush", "ours") / med("flush", "rawIoredisHsetPexpire")),
    createVsRawIoredis: finite(med("create", "ours") / med("create", "rawIoredisHsetPexpire")),
    destroyVsRawIoredis: finite(med("destroy", "ours") / med("destroy", "rawIoredisDel")),
    flushVsConnectRedisSet: finite(med("flush", "connectRedisSet") / med("flush", "ours")),
    createVsConnectRedisSet: finite(med("create", "connectRedisSet") / med("create", "ours")),
    destroyVsConnectRedisDestroy: finite(med("destroy", "connectRedisDestroy") / med("destroy", "ours")),
    sessionCpuOverheadVsExpress: oursCpuOverhead > 0 ? finite(expressCpuOverhead / oursCpuOverhead) : null,
    sessionCpuOverheadVsExpressCsc: oursCpuOverhead > 0 ? finite(expressCscCpuOverhead / oursCpuOverhead) : null,
    sessionCpuOverheadOursUs: finite(oursCpuOverhead),
    sessionCpuOverheadExpressUs: finite(expressCpuOverhead),
    sessionCpuOverheadExpressCscUs: finite(expressCscCpuOverhead),
    middlewareFloorCpuUs: finite(s.oursFloor.cpuPerRequestUs - s.oursNoSession.cpuPerRequestUs),
    platformMiddlewareCpuUs: finite(s.oursPlatformMiddleware.cpuPerRequestUs - s.oursNoSession.cpuPerRequestUs),
    sessionCpuOverheadOverFloorUs: finite(s.ours.cpuPerRequestUs - s.oursFloor.cpuPerRequestUs),
    // The least any session middleware that writes through to Redis costs in this cycle: the trivial
    // middleware, and our flush's commands by hand on each write. express-session's overhead over it
    // is the best ratio a session library with no cost of its own could show.
    writeFloorCpuUs: finite(writeFloorCpuOverhead),
    sessionCpuOverheadOverWriteFloorUs: finite(s.ours.cpuPerRequestUs - s.oursWriteFloor.cpuPerRequestUs),
    sessionCpuOverheadVsExpressAtWriteFloor: writeFloorCpuOverhead > 0
      ? finite(expressCpuOverhead / writeFloorCpuOverhead)
      : null,
    httpReadMostlyVsExpress: finite(s.ours.requestsPerSec / s.express.requestsPerSec),
    httpReadMostlyVsExpressCsc: finite(s.ours.requestsPerSec / s.expressCsc.requestsPerSec),
    // The Express adapter (effect-session-redis/express) against connect-redis, both under express-session.
    expressStoreVsConnectRedis: finite(s.expressOurs.requestsPerSec / s.express.requestsPerSec),
    expressStoreCpuOverheadVsConnectRedis: expressOursCpuOverhead > 0
      ? finite(expressCpuOverhead / expressOursCpuOverhead)
      : null,
    sessionCpuOverheadExpressOursUs: finite(expressOursCpuOverhead),
    sessionOverheadVsExpress: oursOverhead > 0 ? finite(expressOverhead / oursOverhead) : null,
    sessionOverheadOursUs: finite(oursOverhead),
    sessionOverheadExpressUs: finite(expressOverhead),
    remoteLatencyP50VsNoSession: finite(r.ours.latencyP50Ms / r.oursNoSession.latencyP50Ms),
    remoteLatencyP50WriteFloorVsNoSession: finite(r.oursWriteFloor.latencyP50Ms / r.oursNoSession.latencyP50Ms),
    remoteLatencyP50VsNoSessionExpress: finite(r.express.latencyP50Ms / r.expressNoSession.latencyP50Ms),
    remoteLatencyP50VsNoSessionExpressCsc: finite(r.expressCsc.latencyP50Ms / r.expressNoSession.latencyP50Ms),
    remoteLatencyP99VsNoSession: finite(r.ours.latencyP99Ms / r.oursNoSession.latencyP99Ms),
    remoteLatencyP99VsNoSessionExpress: finite(r.express.latencyP99Ms / r.expressNoSession.latencyP99Ms),
    ...fleet.ratios
  }
  const lostUpdates = { ours: raw.lostUpdates.ours.lost, expressSession: raw.lostUpdates.expressSession.lost }
  const commandsPerCachedRead = {
    ours: round(raw.commands.ours.perRequest),
    expressSession: round(raw.commands.expressSession.perRequest),
    expressSessionCsc: round(raw.commands.expressSessionCsc.perRequest)
  }
  const inv = raw.invalidation
  const values: Record<string, number | null> = {
    ...Object.fromEntries(Object.entries(ratios).map(([k, v]) => [`ratios.${k}`, v])),
    "lostUpdates.ours": lostUpdates.ours,
    "commandsPerCachedRead.ours": commandsPerCachedRead.ours
  }
  const httpRound = (i: number) => Object.fromEntries(Object.entries(http.perRound).map(([m, runs]) => [m, runs[i]!]))
  const remoteRound = (i: number) =>
    Object.fromEntries(Object.entries(remote.perRound).map(([m, runs]) => [m, runs[i]!]))
  const inRounds = <A>(count: number, round: (i: number) => A, f: (a: A) => number | null) =>
    Array.from({ length: count }, (_, i) => f(round(i)))
  // Store level: ours ÷ raw within each round (the two ran back to back).
  const storeRounds = (op: keyof StoreResults, ours: string, raw: string) => {
    const a = store[op][ours]?.roundMediansUs ?? []
    const b = store[op][raw]?.roundMediansUs ?? []
    return a.map((us, i) => b[i] === undefined ? null : finite(us / b[i]!))
  }
  const ratioRounds: Record<string, ReadonlyArray<number | null>> = {
    missVsRawIoredis: storeRounds("miss", "ours", "rawIoredisHgetallDecode"),
    flushVsRawIoredis: storeRounds("flush", "ours", "rawIoredisHsetPexpire"),
    createVsRawIoredis: storeRounds("create", "ours", "rawIoredisHsetPexpire"),
    destroyVsRawIoredis: storeRounds("destroy", "ours", "rawIoredisDel"),
    sessionCpuOverheadVsExpress: inRounds(http.rounds, httpRound, (x) => {
      const ours = cpuOverhead(x["ours"]!, x["oursNoSession"]!)
      return ours > 0 ? finite(cpuOverhead(x["express"]!, x["expressNoSession"]!) / ours) : null
    }),
    httpReadMostlyVsExpress: inRounds(
      http.rounds,
      httpRound,
      (x) => finite(x["ours"]!.requestsPerSec / x["express"]!.requestsPerSec)
    ),
    remoteLatencyP50VsNoSession: inRounds(
      remote.rounds,
      remoteRound,
      (x) => finite(x["ours"]!.latencyP50Ms / x["oursNoSession"]!.latencyP50Ms)
    ),
    remoteLatencyP50VsNoSessionExpress: inRounds(
      remote.rounds,
      remoteRound,
      (x) => finite(x["express"]!.latencyP50Ms / x["expressNoSession"]!.latencyP50Ms)
    ),
    ...fleet.rounds
  }
  const targets: Array<Target> = [...goals, ...(raw.fleet === undefined ? [] : fleetGoals)].map(([name, goal, met]) => {
    const value = values[name] ?? null
    return { name, goal, value, met: value !== null && met(value) }
  })
  return {
    meta,
    ratios,
    lostUpdates,
    commandsPerCachedRead,
    invalidation: {
      latencyMedianUs: round(inv.latency.medianUs),
      latencyP99Us: round(inv.latency.p99Us),
      hitRatio: round(inv.hitRatio.ratio, 4)
    },
    ...(raw.trackingTable === undefined ? {} : { trackingTable: trackingTableSummary(raw.trackingTable) }),
    ratioRounds,
    targets,
    notes: {
      ratios:
        "Every contender runs once per round, in rotating order, over 3 rounds; a figure is the median over the rounds (store level: the median of each round's median time per operation), so a burst of load from other processes moves it little. Higher is better for us, except the ones that divide ours by theirs: *VsRawIoredis at the miss, flush, create and destroy, missVsConnectRedisGet, hitSlowdownVsMapGet, remoteLatency* (lower is better) and the *Us figures (µs: lower is better).",
      ratioRounds:
        "ratioRounds repeats the headline ratios within each round, whose contenders ran back to back: when the rounds disagree, the machine was busy and the median is the figure to quote, with care.",
      rawIoredis:
        "flushVsRawIoredis, createVsRawIoredis, destroyVsRawIoredis and missVsRawIoredis: our operation inside one Effect program ÷ the same commands sent by hand through ioredis (MULTI HSET PEXPIRE of one field; MULTI HSET PEXPIRE of a new hash with the same fields; DEL; HGETALL + JSON decode), on a client with the same autoPipelining setting as ours (on). 1.0 means no cost over the commands themselves.",
      sessionCpuOverhead:
        "The headline for what sessions cost: the server process's CPU time per request with sessions minus without, in µs, on loopback at saturation (64 connections). sessionCpuOverheadVsExpress = express-session's ÷ ours (higher is better for us). CPU time is not taken by other processes, unlike throughput.",
      middleware:
        "middlewareFloorCpuUs: CPU per request that a trivial middleware (provide a service built from the request, register an identity pre-response handler) adds to the same @effect/platform server: the part of our session cost that is the framework's middleware machinery. platformMiddlewareCpuUs: the same for @effect/platform's own HttpMiddleware.xForwardedHeaders. sessionCpuOverheadOverFloorUs: ours minus the floor.",
      remoteLatency:
        "Redis behind a proxy that delays every chunk each way (no netem here); the read-mostly cycle at a fixed, moderate rate over 8 connections per server (open loop, never saturated), every server loaded at once with their requests interleaved, so noise from elsewhere falls on all alike. remoteLatencyP50VsNoSession = ours p50 ÷ the same server without sessions (1.0: sessions add no latency).",
      expressCsc:
        "express-session + connect-redis (disableTouch) on node-redis 5's client-side cache (RESP3, CLIENT TRACKING): the strongest express setup known. Its cached get sends no command, but see docs/benchmarks.md for why its HTTP cost stays high.",
      missVsRawIoredis:
        "Ours ÷ raw time, so LOWER is better: 1.0 means our miss costs what a hand-written ioredis HGETALL + JSON decode costs. Our miss is timed inside one Effect program, as the hit is; missVsRawIoredisRunPromise adds one Effect.runPromise per call (what a Promise caller pays).",
      hitSlowdownVsMapGet: "Our hit ÷ Map.get time: how far the store's hit is from the floor (lower is better).",
      hit:
        "hitVsConnectRedisGet and hitVsRawIoredis use our hit measured inside one Effect program (the per-operation cost an Effect handler pays); the *RunPromise variants use one Effect.runPromise per call (what a Promise caller pays).",
      storeLevel:
        "One operation at a time on one connection per client, on loopback. \"ours\" is timed inside one Effect program (what an Effect handler pays); \"oursRunPromise\" adds one Effect.runPromise per call (what a Promise caller pays).",
      sessionOverhead:
        "Server time per request that sessions add: 1/throughput with sessions minus 1/throughput without, in µs (the server is one Node process, CPU-bound). sessionOverheadVsExpress = express's overhead ÷ ours; null when ours is not measurably above zero. Throughput depends on how much of the core other processes took: prefer sessionCpuOverhead*.",
      lostUpdates:
        "Fields lost out of 100 (worst trial), counted in Redis after 100 concurrent requests to one session each set a different field.",
      commandsPerCachedRead:
        "Redis commands (INFO commandstats) per read-only request for a session the server has already seen, sequential requests.",
      ...(raw.fleet === undefined ? {} : {
        fleet:
          "One writing instance and 0, 2 or 6 idle ones, each a Node process with its own store, on one Redis; the idle instances cache and track 50 sessions of their own, none of the written ones. Per write (a cache-hit read and a one-field flush, 32 at once), CPU time of the write phase only: each process's own process.cpuUsage(), Redis's INFO cpu. fleetIdleCpuVsWriter = the idle instances' CPU per write, summed over them, ÷ the writer's, at the worst N (lower is better; goal ≤ 0.05); fleetRedisCpuWith6VsAlone = Redis's CPU per write with 6 idle instances ÷ with the writer alone (lower is better; goal ≤ 1.15). The fleetBroadcast* figures are the same with cache.tracking \"broadcast\" (BCAST), for the record; null where the store did not run that mode."
      }),
      ...(raw.trackingTable === undefined ? {} : {
        trackingTable:
          "Redis's used_memory on a redis-server of its own: per session key tracked by one client (RESP2 redirect, NOLOOP, HGETALL), against the same keys read untracked, and per additional client tracking the same key; and what tracking-table-max-keys below the tracked keys does."
      }),
      invalidation:
        "Latency from B's flush acknowledgement to the start of A's first retrieve that returns the new value (A polls in a loop; resolution = poll interval). Hit ratio = hits ÷ retrieves over both instances, from the stores' own cache counters; Redis's command counts for the run are kept beside it."
    },
    raw
  }
}
