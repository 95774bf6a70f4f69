/**
 * The store behind Redis Sentinel (issue 11): it finds the master through the
 * sentinels, follows real failovers (SENTINEL FAILOVER, SIGKILL of the
 * master) without a restart, keeps its near-cache coherent across two
 * instances, and with `waitReplicas: 1` loses no acknowledged session.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, vi } from "vitest"
import { type SessionStore } from "../src/index.js"
import { RedisServer } from "./support/index.js"
import * as RedisSentinel from "./support/RedisSentinel.js"
import { instance, setField, untilSeen } from "./support/Stores.js"
import * as Workload from "./support/Workload.js"

type Store = SessionStore.SessionStore

/** Polls until a write through `store` succeeds again. */
const untilWritable = (store: Store) =>
  RedisServer.eventually(store.create({ probe: true }), { timeoutMs: 30_000, intervalMs: 20 })

/**
 * Both instances cache `id`; then `v` changes through `a` after the failover:
 * `b` must come to serve the new value (a cache that believed itself tracked
 * on the old master would serve the old one forever), and so must `a`.
 */
const coherentAfter = (a: Store, b: Store, id: string, value: string) =>
  Effect.gen(function*() {
    // Right after a failover a write may still fail, typed (a WAIT not yet confirmed, a connection
    // being replaced): the write is retried until it is acknowledged, as an app would.
    yield* untilWritten(a, id, value)
    yield* untilSeen(b, id, value)
    yield* untilSeen(a, id, value)
    // And b keeps tracking: one more change is seen too.
    yield* untilWritten(a, id, `${value}+`)
    yield* untilSeen(b, id, `${value}+`)
    yield* untilTracking(b)
  })

/** Retries `setField` until one attempt is acknowledged. */
const untilWritten = (store: Store, id: string, value: unknown) =>
  RedisServer.eventually(setField(store, id, value), { timeoutMs: 20_000, intervalMs: 20 })

/** Polls until the store's near-cache is tracked again (a late reconnect may switch it Off for a moment). */
const untilTracking = (store: Store) =>
  RedisServer.eventually(
    Effect.flatMap(store.cacheStats, (stats) => stats.mode === "Tracking" ? Effect.void : Effect.fail(stats.mode)),
    { timeoutMs: 15_000, intervalMs: 10 }
  )

/**
 * Every connection the store makes has an `error` listener (issue 20, point 9): ioredis prints
 * "[ioredis] Unhandled error event" for an error on a connection without one. ioredis's own failover
 * detector had none on its connections to the sentinels; the store follows failovers itself now.
 */
const unhandled = () =>
  vi.mocked(console.error).mock.calls.map((args) => args.map(String).join(" ")).filter((line) =>
    line.includes("Unhandled error event")
  )

describe("Redis Sentinel", () => {
  beforeAll(() => {
    vi.spyOn(console, "error")
  })
  afterAll(() => {
    expect(unhandled()).toEqual([])
    vi.restoreAllMocks()
  })

  it.scopedLive(
    "finds the master, follows SENTINEL FAILOVER and a SIGKILLed master, stays coherent, loses no acknowledged session with waitReplicas",
    () =>
      Effect.gen(function*() {
        const deployment = yield* RedisSentinel.scoped()
        const a = yield* instance(deployment.settings({ waitReplicas: 1, waitTimeout: 1000 }))
        const b = yield* instance(deployment.settings())

        // Coherence across instances on the first master.
        const session = yield* a.create({ v: "start" })
        yield* b.retrieve(session.id)
        yield* coherentAfter(a, b, session.id, "before")
        yield* untilTracking(a)

        // SENTINEL FAILOVER: the old master stays alive and becomes a replica.
        const planned = yield* Workload.writer(a, "planned")
        const plannedStart = Date.now()
        yield* Effect.promise(() => deployment.failover())
        yield* untilWritable(b)
        const plannedB = Date.now()
        // With one replica, WAIT 1 succeeds again once the sentinels have turned the old master into a replica.
        yield* Effect.promise(() => deployment.replicated())
        yield* untilWritable(a)
        yield* planned.stop
        yield* Workload.report(
          `sentinel FAILOVER: waitReplicas=0 writes ok ${
            plannedB - plannedStart
          } ms after the command; waitReplicas=1 ok ${
            Date.now() - plannedStart
          } ms after (old master resynced as replica); errors (waitReplicas=1) ${JSON.stringify(planned.tally.errors)}`
        )
        yield* coherentAfter(a, b, session.id, "after-failover")

        // SIGKILL of the master, with two writers: `a` waits for a replica, `b` does not.
        const waited = yield* Workload.writer(a, "waited")
        const unwaited = yield* Workload.writer(b, "unwaited")
        yield* RedisServer.eventually(
          Effect.suspend(() => waited.tally.acknowledged.length > 20 ? Effect.void : Effect.fail("warming up"))
        )
        const old = yield* Effect.promise(() => deployment.master())
        const killedAt = Date.now()
        const promoted = yield* Effect.promise(() => deployment.killMaster())
        // With one replica, WAIT 1 can succeed again only once the old master is back as a replica.
        yield* Effect.promise(() => old.restart())
        yield* untilWritable(b)
        yield* Effect.promise(() => deployment.replicated())
        yield* untilWritable(a)
        yield* RedisServer.eventually(
          Effect.suspend(() => waited.tally.recoveredAt !== undefined ? Effect.void : Effect.fail("not recovered"))
        )
        yield* waited.stop
        yield* unwaited.stop

        // Count the acknowledged sessions that the promoted master does not have.
        const raw = promoted.client()
        const lost = async (ids: ReadonlyArray<string>) => {
          let missing = 0
          for (const id of ids) if ((await raw.exists(`session:${id}`)) === 0) missing++
          return missing
        }
        const lostWaited = yield* Effect.promise(() => lost(waited.tally.acknowledged))
        const lostUnwaited = yield* Effect.promise(() => lost(unwaited.tally.acknowledged))
        yield* Workload.report(
          `sentinel kill -9: waitReplicas=1 writes ok again ${
            (waited.tally.recoveredAt ?? 0) - killedAt
          } ms after the kill (old master restarted), errors ${
            JSON.stringify(waited.tally.errors)
          }, lost ${lostWaited}/${waited.tally.acknowledged.length}; ` +
            `waitReplicas=0 ok again ${(unwaited.tally.recoveredAt ?? killedAt) - killedAt} ms, errors ${
              JSON.stringify(unwaited.tally.errors)
            }, lost ${lostUnwaited}/${unwaited.tally.acknowledged.length}`
        )
        expect(waited.tally.acknowledged.length).toBeGreaterThan(20)
        expect(lostWaited).toBe(0)

        yield* coherentAfter(a, b, session.id, "after-kill")
        expect(unhandled()).toEqual([])
      }).pipe(RedisServer.hangGuard(120_000, "sentinel failovers")),
    { timeout: 120_000 }
  )

  it.scopedLive(
    "a sentinel that dies prints nothing: the store's connections to it report to the debug log, and writes go on",
    () =>
      Effect.gen(function*() {
        const deployment = yield* RedisSentinel.scoped()
        const store = yield* instance(deployment.settings({ debug: true }))
        yield* store.create({ v: "start" })
        yield* Effect.promise(() => deployment.killSentinel(0))
        // The store's failover subscriber on that sentinel reconnects with the backoff and is refused:
        // it says so in the debug log (stderr), and nothing else prints.
        const port = deployment.sentinels[0]!.split(":")[1]
        yield* RedisServer.eventually(
          Effect.suspend(() =>
            vi.mocked(console.error).mock.calls.some((args) =>
                args.join(" ").includes(`sentinel 127.0.0.1:${port} error`)
              )
              ? Effect.void
              : Effect.fail("no refused reconnect yet")
          ),
          { timeoutMs: 15_000, intervalMs: 20 }
        )
        yield* untilWritable(store)
        expect(unhandled()).toEqual([])
      }).pipe(RedisServer.hangGuard(60_000, "a sentinel killed")),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "a failover announced while a reconnect is asking the sentinels for the master does not end the connection for good",
    () =>
      Effect.gen(function*() {
        const deployment = yield* RedisSentinel.scoped()
        // The store asks the sentinels in order, the first one first; it waits for an answer up to connectTimeout.
        const store = yield* instance(deployment.settings({ connectTimeout: "3 seconds" }))
        yield* store.create({ v: "start" })
        const master = yield* Effect.promise(() => deployment.master())

        // The first sentinel stops answering, and the store's connections to the master are killed:
        // reconnecting, they wait on that sentinel. Meanwhile another sentinel fails over and announces
        // it (+switch-master) to the failover detectors of the connections that were killed.
        deployment.freezeSentinel(0)
        yield* Effect.addFinalizer(() => Effect.sync(() => deployment.thawSentinel(0)))
        yield* Effect.promise(() => master.client().call("CLIENT", "KILL", "TYPE", "normal"))
        yield* Effect.promise(() => deployment.failoverVia(1))

        // ioredis ends such a connection for good ("Connection is closed."); the store reconnects it.
        yield* untilWritable(store)
        yield* Effect.sync(() => deployment.thawSentinel(0))
        yield* untilWritable(store)
        // The frozen sentinel's connections were reset when it thawed: nothing printed about it.
        expect(unhandled()).toEqual([])
      }).pipe(RedisServer.hangGuard(60_000, "sentinel failover during a reconnect")),
    { timeout: 60_000 }
  )
})
