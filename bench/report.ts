/**
 * Turns the raw figures into `bench/results.json`: ratios, targets (goals,
 * not assertions) and the notes that say how to read them.
 */
import type { CommandCount } from "./commands.js"
import { type HttpResults, sessionOverheadUs } from "./httpReadMostly.js"
import type { InvalidationResults } from "./invalidation.js"
import type { LostUpdateResult } from "./lostUpdates.js"
import type { StoreResults } from "./store.js"

export interface Raw {
  readonly store: StoreResults
  readonly http: HttpResults
  readonly lostUpdates: { readonly ours: LostUpdateResult; readonly expressSession: LostUpdateResult }
  readonly commands: { readonly ours: CommandCount; readonly expressSession: CommandCount }
  readonly invalidation: InvalidationResults
}

export interface Target {
  readonly name: string
  readonly goal: string
  readonly value: number | null
  readonly met: boolean
}

export interface Results {
  readonly meta: Record<string, unknown>
  readonly ratios: Record<string, number | null>
  readonly lostUpdates: { readonly ours: number; readonly expressSession: number }
  readonly commandsPerCachedRead: { readonly ours: number; readonly expressSession: number }
  readonly invalidation: {
    readonly latencyMedianUs: number
    readonly latencyP99Us: number
    readonly hitRatio: number
  }
  readonly targets: ReadonlyArray<Target>
  readonly notes: Record<string, string>
  readonly raw: Raw
}

const round = (x: number, digits = 3): number => Number(x.toPrecision(digits + 1))
const finite = (x: number): number | null => (Number.isFinite(x) ? round(x) : null)

export const buildResults = (raw: Raw, meta: Record<string, unknown>): Results => {
  const { store, http } = raw
  const s = http.servers
  const oursOverhead = sessionOverheadUs(s.ours, s.oursNoSession)
  const expressOverhead = sessionOverheadUs(s.express, s.expressNoSession)
  const oursCpuOverhead = s.ours.cpuPerRequestUs - s.oursNoSession.cpuPerRequestUs
  const expressCpuOverhead = s.express.cpuPerRequestUs - s.expressNoSession.cpuPerRequestUs
  const ratios: Record<string, number | null> = {
    hitVsConnectRedisGet: finite(store.hit["connectRedisGet"]!.medianUs / store.hit["oursEffectLoop"]!.medianUs),
    hitVsConnectRedisGetRunPromise: finite(
      store.hit["connectRedisGet"]!.medianUs / store.hit["oursRunPromise"]!.medianUs
    ),
    hitVsRawIoredis: finite(store.hit["rawIoredisHgetall"]!.medianUs / store.hit["oursEffectLoop"]!.medianUs),
    hitVsRawIoredisRunPromise: finite(store.hit["rawIoredisHgetall"]!.medianUs / store.hit["oursRunPromise"]!.medianUs),
    hitSlowdownVsMapGet: finite(store.hit["oursEffectLoop"]!.medianUs / store.hit["mapGet"]!.medianUs),
    missVsRawIoredis: finite(store.miss["ours"]!.medianUs / store.miss["rawIoredisHgetallDecode"]!.medianUs),
    missVsConnectRedisGet: finite(store.miss["ours"]!.medianUs / store.miss["connectRedisGet"]!.medianUs),
    missVsRawIoredisRunPromise: finite(
      store.miss["oursRunPromise"]!.medianUs / store.miss["rawIoredisHgetallDecode"]!.medianUs
    ),
    flushVsConnectRedisSet: finite(store.flush["connectRedisSet"]!.medianUs / store.flush["ours"]!.medianUs),
    createVsConnectRedisSet: finite(store.create["connectRedisSet"]!.medianUs / store.create["ours"]!.medianUs),
    destroyVsConnectRedisDestroy: finite(
      store.destroy["connectRedisDestroy"]!.medianUs / store.destroy["ours"]!.medianUs
    ),
    httpReadMostlyVsExpress: finite(s.ours.requestsPerSec / s.express.requestsPerSec),
    sessionOverheadVsExpress: oursOverhead > 0 ? finite(expressOverhead / oursOverhead) : null,
    sessionOverheadOursUs: finite(oursOverhead),
    sessionOverheadExpressUs: finite(expressOverhead),
    sessionCpuOverheadVsExpress: oursCpuOverhead > 0 ? finite(expressCpuOverhead / oursCpuOverhead) : null,
    sessionCpuOverheadOursUs: finite(oursCpuOverhead),
    sessionCpuOverheadExpressUs: finite(expressCpuOverhead)
  }
  const lostUpdates = { ours: raw.lostUpdates.ours.lost, expressSession: raw.lostUpdates.expressSession.lost }
  const commandsPerCachedRead = {
    ours: round(raw.commands.ours.perRequest),
    expressSession: round(raw.commands.expressSession.perRequest)
  }
  const inv = raw.invalidation
  const target = (name: string, goal: string, value: number | null, met: (v: number) => boolean): Target => ({
    name,
    goal,
    value,
    met: value !== null && met(value)
  })
  const targets = [
    target("ratios.hitVsConnectRedisGet", "≥ 50", ratios["hitVsConnectRedisGet"]!, (v) => v >= 50),
    target("ratios.hitVsRawIoredis", "≥ 50", ratios["hitVsRawIoredis"]!, (v) => v >= 50),
    target("ratios.missVsRawIoredis", "≤ 1.3", ratios["missVsRawIoredis"]!, (v) => v <= 1.3),
    target("ratios.httpReadMostlyVsExpress", "≥ 1.5", ratios["httpReadMostlyVsExpress"]!, (v) => v >= 1.5),
    target("lostUpdates.ours", "= 0", lostUpdates.ours, (v) => v === 0),
    target("commandsPerCachedRead.ours", "= 0", commandsPerCachedRead.ours, (v) => v === 0),
    target("invalidation.latencyMedianUs", "< 1000 µs", finite(inv.latency.medianUs), (v) => v < 1000)
  ]
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
    targets,
    notes: {
      ratios:
        "Ratios compare median times per operation (robust to bursts of load from other processes). Higher is better for us, except missVsRawIoredis, missVsRawIoredisRunPromise, missVsConnectRedisGet and hitSlowdownVsMapGet (ours ÷ theirs: lower is better) and sessionOverhead*Us (µs: lower is better).",
      missVsRawIoredis:
        "Ours ÷ raw time, so LOWER is better: 1.0 means our miss costs what a hand-written ioredis HGETALL + JSON decode costs. Our miss is timed inside one Effect program, as the hit is; missVsRawIoredisRunPromise adds one Effect.runPromise per call (what a Promise caller pays).",
      hitSlowdownVsMapGet: "Our hit ÷ Map.get time: how far the store's hit is from the floor (lower is better).",
      hit:
        "hitVsConnectRedisGet and hitVsRawIoredis use our hit measured inside one Effect program (the per-operation cost an Effect handler pays); the *RunPromise variants use one Effect.runPromise per call (what a Promise caller pays).",
      storeLevel:
        "One operation at a time on one connection per client, on loopback; our Redis-bound operations are each run through Effect.runPromise.",
      sessionOverhead:
        "Server time per request that sessions add: 1/throughput with sessions minus 1/throughput without, in µs (the server is one Node process, CPU-bound). sessionOverheadVsExpress = express's overhead ÷ ours; null when ours is not measurably above zero. sessionCpuOverhead*: the same from the server process's CPU time per request, which other load on the machine disturbs less.",
      lostUpdates:
        "Fields lost out of 100 (worst trial), counted in Redis after 100 concurrent requests to one session each set a different field.",
      commandsPerCachedRead:
        "Redis commands (INFO commandstats) per read-only request for a session the server has already seen, sequential requests.",
      invalidation:
        "Latency from B's flush acknowledgement to the start of A's first retrieve that returns the new value (A polls in a loop; resolution = poll interval). Hit ratio = hits ÷ retrieves over both instances, from the stores' own cache counters; Redis's command counts for the run are kept beside it."
    },
    raw
  }
}
