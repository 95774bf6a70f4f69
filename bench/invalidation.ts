/**
 * Cross-instance coherence: two stores A and B (separate connections, same
 * Redis) in one process stand for two app instances.
 * - Invalidation latency: from B's flush being acknowledged to A no longer
 *   serving the old value.
 * - Hit ratio of a read-mostly workload spread over both instances.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import type { Session } from "../src/Session.js"
import { commandStats } from "./commands.js"
import { openStore } from "./ourStore.js"
import type { BenchRedis } from "./redis.js"
import { makeSessionData } from "./sessionShape.js"
import { fmtUs, log, nowUs, percentile, quick } from "./stats.js"

export interface InvalidationResults {
  readonly latency: {
    readonly trials: number
    /** From B's flush being acknowledged to A serving the new value (0 when A was first). */
    readonly medianUs: number
    readonly p99Us: number
    readonly maxUs: number
    /** From B sending its flush (so including B's round trip) to A serving the new value. */
    readonly fromWriteSentMedianUs: number
    readonly fromWriteSentP99Us: number
    /** Trials where A had dropped the key before B's caller saw the acknowledgement (counted as 0 above). */
    readonly droppedBeforeAck: number
    /** Trials where A still served the old value 1 s after B's write. */
    readonly timedOut: number
    /** How often A was polled: the resolution of the figures above. */
    readonly pollIntervalMedianUs: number
  }
  readonly hitRatio: {
    readonly sessions: number
    readonly operations: number
    readonly writeShare: number
    readonly retrieves: number
    readonly writes: number
    /** From the stores' own cache counters (`cacheStats`) over the run. */
    readonly hits: number
    readonly misses: number
    readonly invalidations: number
    /** hits ÷ retrieves. */
    readonly ratio: number
    /** What Redis counted over the run (INFO commandstats), by command: misses and writes together. */
    readonly redisCommands: Record<string, number>
    /** Reads that returned a version older than one whose write was already acknowledged. */
    readonly staleReads: number
  }
}

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve))

type OpenStore = Awaited<ReturnType<typeof openStore>>

const version = (session: Option.Option<Session>): number =>
  Option.match(session, { onNone: () => -1, onSome: (s) => Number(s.data["counter"]) })

/**
 * A polls its cached copy in a loop while B's flush is in flight. The key was
 * dropped between the start of the last poll that still saw the old value and
 * the start of the first one that saw the new value; we take the latter.
 */
const latency = async (a: OpenStore, b: OpenStore, trials: number) => {
  const base = await run(b.store.create(makeSessionData()))
  await run(a.store.retrieve(base.id))
  const afterAck: Array<number> = []
  const afterSend: Array<number> = []
  const pollGaps: Array<number> = []
  let beforeAck = 0
  let timedOut = 0
  for (let i = 1; i <= trials; i++) {
    // A holds the previous version: its last poll refilled the cache.
    if (version(await run(a.store.retrieve(base.id))) !== i - 1) throw new Error("A does not hold the previous version")
    const sent = nowUs()
    let acked = Number.NaN
    const write = run(b.store.flush({ ...base, data: { ...base.data, counter: i } })).then(() => {
      acked = nowUs()
    })
    let previous = sent
    for (;;) {
      const started = nowUs()
      pollGaps.push(started - previous)
      previous = started
      if (version(await run(a.store.retrieve(base.id))) === i) {
        await write
        afterSend.push(started - sent)
        afterAck.push(Math.max(0, started - acked))
        if (started < acked) beforeAck++
        break
      }
      if (started - sent > 1e6) {
        timedOut++
        await write
        break
      }
      await nextTick()
    }
  }
  const sorted = Float64Array.from(afterAck).sort()
  const fromSend = Float64Array.from(afterSend).sort()
  const gaps = Float64Array.from(pollGaps).sort()
  return {
    trials,
    medianUs: percentile(sorted, 50),
    p99Us: percentile(sorted, 99),
    maxUs: sorted[sorted.length - 1] ?? Number.NaN,
    fromWriteSentMedianUs: percentile(fromSend, 50),
    fromWriteSentP99Us: percentile(fromSend, 99),
    droppedBeforeAck: beforeAck,
    timedOut,
    pollIntervalMedianUs: percentile(gaps, 50)
  }
}

const hitRatio = async (a: OpenStore, b: OpenStore, raw: Redis, operations: number) => {
  const sessions = 100
  const writeShare = 0.05
  const ids: Array<string> = []
  for (let i = 0; i < sessions; i++) ids.push((await run(a.store.create({ ...makeSessionData(i), counter: 0 }))).id)
  // Both instances read every session once, so the run starts warm.
  for (const id of ids) await Promise.all([run(a.store.retrieve(id)), run(b.store.retrieve(id))])
  const latest = new Array<number>(sessions).fill(0)
  let written = 0
  let retrieves = 0
  let staleReads = 0
  await raw.config("RESETSTAT")
  const [statsA, statsB] = [await run(a.store.cacheStats), await run(b.store.cacheStats)]
  for (let op = 0; op < operations; op++) {
    const instance = Math.random() < 0.5 ? a : b
    const s = Math.floor(Math.random() * sessions)
    const found = await run(instance.store.retrieve(ids[s]!))
    retrieves++
    if (version(found) < latest[s]!) staleReads++
    if (Option.isSome(found) && Math.random() < writeShare) {
      const v = ++written
      await run(instance.store.flush({ ...found.value, data: { ...found.value.data, counter: v } }))
      latest[s] = v
    }
  }
  const redisCommands = await commandStats(raw)
  const [endA, endB] = [await run(a.store.cacheStats), await run(b.store.cacheStats)]
  const hits = endA.hits - statsA.hits + endB.hits - statsB.hits
  return {
    sessions,
    operations,
    writeShare,
    retrieves,
    writes: written,
    hits,
    misses: endA.misses - statsA.misses + endB.misses - statsB.misses,
    invalidations: endA.invalidations - statsA.invalidations + endB.invalidations - statsB.invalidations,
    ratio: hits / retrieves,
    redisCommands,
    staleReads
  }
}

export const runInvalidation = async (redis: BenchRedis): Promise<InvalidationResults> => {
  const trials = quick ? 100 : 500
  const operations = quick ? 4_000 : 40_000
  log(`\n[6/8] Cross-instance invalidation (two stores, one Redis)`)
  const a = await openStore(redis.server)
  const b = await openStore(redis.server)
  const raw = new Redis({ host: redis.host, port: redis.port })
  try {
    const lat = await latency(a, b, trials)
    log(
      `    invalidation latency, ${trials} trials (A polled every ~${
        fmtUs(lat.pollIntervalMedianUs)
      }; ${lat.timedOut} timed out):`
    )
    log(
      `      B's flush acknowledged → A serves the new value: median ${fmtUs(lat.medianUs)}  p99 ${
        fmtUs(lat.p99Us)
      }  max ${fmtUs(lat.maxUs)}  (A was first in ${lat.droppedBeforeAck} trials)`
    )
    log(
      `      B's flush sent → A serves the new value:         median ${fmtUs(lat.fromWriteSentMedianUs)}  p99 ${
        fmtUs(lat.fromWriteSentP99Us)
      }`
    )
    const hits = await hitRatio(a, b, raw, operations)
    log(
      `    hit ratio, 100 sessions read at random on A and B, 5% writes, ${operations} operations: ${
        (hits.ratio * 100).toFixed(1)
      }% (${hits.hits} hits, ${hits.misses} misses, ${hits.writes} writes; Redis counted ${
        JSON.stringify(hits.redisCommands)
      }; ${hits.staleReads} stale reads)`
    )
    return { latency: lat, hitRatio: hits }
  } finally {
    await Promise.allSettled([a.close(), b.close(), raw.quit()])
  }
}
