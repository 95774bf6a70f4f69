/**
 * The store on a real Redis Cluster (issue 11): three masters and three
 * replicas started by the suite. Every operation works across all slots, the
 * near-cache stays coherent on every master with two instances, the per-user
 * index works across slots, and a failover (CLUSTER FAILOVER, SIGKILL of a
 * master) makes only that master's sessions fail, typed and bounded, until
 * its replica takes over, while the other masters' sessions keep working.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type SessionConfig, SessionStore } from "../src/index.js"
import * as Slots from "../src/internal/slots.js"
import { RedisServer } from "./support/index.js"
import * as RedisCluster from "./support/RedisCluster.js"
import { instance, setField, untilSeen } from "./support/Stores.js"
import * as Workload from "./support/Workload.js"

type Store = SessionStore.SessionStore

/** Sessions until each master holds at least `perMaster` of them. */
const spread = (store: Store, cluster: RedisCluster.RedisCluster, perMaster: number) =>
  Effect.gen(function*() {
    const masters = yield* Effect.promise(() => cluster.masters())
    const byMaster = new Map<number, Array<string>>(masters.map((m) => [m.port, []]))
    while ([...byMaster.values()].some((ids) => ids.length < perMaster)) {
      const session = yield* store.create({ v: "start" })
      const master = yield* Effect.promise(() => cluster.masterOf(`session:${session.id}`))
      byMaster.get(master.port)!.push(session.id)
    }
    return byMaster
  })

/** What an updater saw: failures by tag and reason, and when writes failed and came back. */
interface Tally {
  ok: number
  readonly errors: Record<string, number>
  firstFailure: number | undefined
  recoveredAt: number | undefined
}

/** Keeps updating `ids` (round robin) through `store`, counting outcomes; interrupted by the caller. */
const updater = (store: Store, ids: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const tally: Tally = { ok: 0, errors: {}, firstFailure: undefined, recoveredAt: undefined }
    let n = 0
    const loop = Effect.forever(
      Effect.matchEffect(Effect.suspend(() => setField(store, ids[n % ids.length]!, `u${n++}`)), {
        onSuccess: () =>
          Effect.sync(() => {
            tally.ok++
            if (tally.firstFailure !== undefined && tally.recoveredAt === undefined) tally.recoveredAt = Date.now()
          }),
        onFailure: (error) =>
          Effect.sync(() => {
            const name = "reason" in error ? `${error._tag}(${error.reason})` : error._tag
            tally.errors[name] = (tally.errors[name] ?? 0) + 1
            tally.firstFailure ??= Date.now()
          }).pipe(Effect.zipRight(Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))))
      })
    )
    const fiber = yield* Effect.fork(loop)
    return { tally, stop: Fiber.interrupt(fiber) }
  })

/**
 * After a failover: a write acknowledged through `a` is served by `b` (whose copy was cached before),
 * and the other way round; and both keep serving it.
 */
const coherentAfter = (a: Store, b: Store, ids: ReadonlyArray<string>, value: string) =>
  Effect.gen(function*() {
    for (const id of ids) yield* b.retrieve(id)
    for (const id of ids) yield* setField(a, id, `${value}:a`)
    for (const id of ids) yield* untilSeen(b, id, `${value}:a`)
    for (const id of ids) yield* setField(b, id, `${value}:b`)
    for (const id of ids) yield* untilSeen(a, id, `${value}:b`)
    for (const id of ids) {
      expect(Option.getOrThrow(yield* a.retrieve(id)).data.v).toBe(`${value}:b`)
      expect(Option.getOrThrow(yield* b.retrieve(id)).data.v).toBe(`${value}:b`)
    }
  })

/** Fails unless every error seen is a typed connection error. */
const onlyConnectionErrors = (tally: { readonly errors: Readonly<Record<string, number>> }) =>
  expect(Object.keys(tally.errors).filter((name) => !name.startsWith("RedisConnectionError("))).toEqual([])

describe("Redis Cluster", () => {
  it.scopedLive(
    "serves every slot, stays coherent on every master, and survives failovers",
    () =>
      Effect.gen(function*() {
        const cluster = yield* RedisCluster.scoped
        const a = yield* instance(cluster.settings({ commandTimeout: "1 second" }))
        const b = yield* instance(cluster.settings({ commandTimeout: "1 second" }))
        expect((yield* a.cacheStats).mode).toBe("Tracking")

        // The store computes slots as the cluster does, hash tags included.
        const probe = cluster.nodes[0]!.client()
        for (const key of ["session:abc", "session:user:{ada}", "x{}y", "{a}{b}", "ü{ß}", "session:"]) {
          expect(Slots.slotOf(key)).toBe(yield* Effect.promise(() => probe.call("CLUSTER", "KEYSLOT", key)))
        }

        // Every operation, on sessions of every master.
        const byMaster = yield* spread(a, cluster, 2)
        const ids = [...byMaster.values()].flat()
        for (const id of ids) {
          expect(Option.getOrThrow(yield* b.retrieve(id)).data).toEqual({ v: "start" })
          yield* b.touch(id)
        }

        // Coherence on every master: b caches, a writes, b's copy is dropped and b serves the new value.
        for (const id of ids) yield* b.retrieve(id)
        const before = yield* b.cacheStats
        for (const id of ids) yield* setField(a, id, `a:${id}`)
        for (const id of ids) yield* untilSeen(b, id, `a:${id}`)
        expect((yield* b.cacheStats).invalidations - before.invalidations).toBeGreaterThanOrEqual(ids.length)
        // And a's own writes stay cached (NOLOOP on each master's connection).
        const hitsA = (yield* a.cacheStats).hits
        for (const id of ids) expect(Option.getOrThrow(yield* a.retrieve(id)).data.v).toBe(`a:${id}`)
        expect((yield* a.cacheStats).hits - hitsA).toBe(ids.length)

        // The per-user index across slots: sessions of one user land on every master.
        const user = "ada"
        const mine: Array<string> = []
        for (let i = 0; i < 9; i++) mine.push((yield* a.create({ n: i }, { user })).id)
        expect((yield* b.sessionsOf(user)).map((s) => s.id).sort()).toEqual([...mine].sort())
        expect(yield* b.destroyAll(user, { except: mine[0]! })).toBe(8)
        expect((yield* a.sessionsOf(user)).map((s) => s.id)).toEqual([mine[0]])
        for (const id of mine.slice(1)) expect(Option.isNone(yield* a.retrieve(id))).toBe(true)

        // regenerate across slots (the old and new ids on different masters, the index on a third): the
        // move happens while the old id lives, and never once it was revoked (issue 19, point 1).
        const moved = Option.getOrThrow(yield* b.regenerate(Option.getOrThrow(yield* b.retrieve(mine[0]!))))
        expect((yield* a.sessionsOf(user)).map((s) => s.id)).toEqual([moved.id])
        expect(Option.isNone(yield* a.retrieve(mine[0]!))).toBe(true)
        const read = Option.getOrThrow(yield* b.retrieve(moved.id))
        expect(yield* a.destroyAll(user)).toBe(1)
        expect(Option.isNone(yield* b.regenerate(read))).toBe(true)
        expect(Option.isNone(yield* b.regenerate(read, { user }))).toBe(true)
        expect(yield* a.sessionsOf(user)).toEqual([])
        yield* a.destroy(ids[0]!)
        yield* RedisServer.eventually(
          Effect.flatMap(
            b.retrieve(ids[0]!),
            (found) => Option.isNone(found) ? Effect.void : Effect.fail("still there")
          )
        )

        // Cache hit ratio with two instances, read-mostly: each request reads its session through one of
        // the instances, and one in ten changes it.
        const workload = ids.slice(1)
        const start = [yield* a.cacheStats, yield* b.cacheStats]
        // A fixed pseudo-random sequence (an LCG): which instance, which session, read or write.
        let seed = 42
        const next = (n: number) => Math.floor((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 16) % n
        for (let i = 0; i < 2000; i++) {
          const store = next(2) === 0 ? a : b
          const id = workload[next(workload.length)]!
          if (next(10) === 0) yield* setField(store, id, i)
          else yield* store.retrieve(id)
          // Requests are apart in time, as in an app: pending invalidations get read in between.
          yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        }
        const end = [yield* a.cacheStats, yield* b.cacheStats]
        const hits = end[0]!.hits - start[0]!.hits + end[1]!.hits - start[1]!.hits
        const misses = end[0]!.misses - start[0]!.misses + end[1]!.misses - start[1]!.misses
        yield* Workload.report(
          `cluster cache: ${workload.length} sessions, 2 instances, 2000 requests (1 in 10 writes): ` +
            `hit ratio ${(hits / (hits + misses)).toFixed(3)} (${hits} hits, ${misses} misses)`
        )
        expect(hits).toBeGreaterThan(misses)

        // store.redis lends a single-server client: refused, typed, on a Cluster.
        const lent = yield* Effect.either(a.redis((client) => client.ping()))
        expect(Either.isLeft(lent) && lent.left._tag).toBe("RedisCommandError")
      }),
    60_000
  )

  it.scopedLive(
    "a failover fails only that master's sessions, typed and bounded, then they recover",
    () =>
      Effect.gen(function*() {
        const cluster = yield* RedisCluster.scoped
        const a = yield* instance(cluster.settings({ commandTimeout: "1 second" }))
        const b = yield* instance(cluster.settings({ commandTimeout: "1 second" }))
        // Acknowledges a write only once its master's replica has it.
        const w = yield* instance(
          cluster.settings({ commandTimeout: "1 second", waitReplicas: 1, waitTimeout: "500 millis" })
        )
        const byMaster = yield* spread(a, cluster, 2)
        const ids = [...byMaster.values()].flat()
        for (const id of ids) yield* b.retrieve(id)

        for (const kind of ["CLUSTER FAILOVER", "kill -9"] as const) {
          const target = yield* Effect.promise(() => cluster.masterOf(`session:${byMaster.values().next().value![0]}`))
          const affected = ids.filter((id) => byMaster.get(target.port)?.includes(id))
          const others = ids.filter((id) => !affected.includes(id))
          const hit = yield* updater(a, affected)
          const rest = yield* updater(b, others)
          // New sessions on every master, acknowledged with and without a replica's confirmation.
          const waited = yield* Workload.writer(w, "waited")
          const unwaited = yield* Workload.writer(b, "unwaited")
          yield* RedisServer.eventually(
            Effect.suspend(() =>
              hit.tally.ok > 10 && rest.tally.ok > 10 && waited.tally.acknowledged.length > 20
                ? Effect.void
                : Effect.fail("warming up")
            )
          )
          const started = Date.now()
          const promoted = yield* Effect.promise(() =>
            kind === "kill -9" ? cluster.killMaster(target) : cluster.failover(target)
          )
          const settled = Date.now()
          yield* waited.stop
          yield* unwaited.stop
          // Every acknowledged session of the failed-over master must be on the promoted one.
          const lost = (acknowledged: ReadonlyArray<string>) =>
            Effect.promise(async () => {
              let missing = 0
              const probe = promoted.client()
              for (const id of acknowledged) {
                const owner = await cluster.masterOf(`session:${id}`)
                if (owner.port === promoted.port && (await probe.exists(`session:${id}`)) === 0) missing++
              }
              return missing
            })
          const lostWaited = yield* lost(waited.tally.acknowledged)
          const lostUnwaited = yield* lost(unwaited.tally.acknowledged)
          yield* Workload.report(
            `cluster ${kind}: acknowledged sessions lost: waitReplicas=1 ${lostWaited}/${waited.tally.acknowledged.length} ` +
              `(errors ${
                JSON.stringify(waited.tally.errors)
              }), waitReplicas=0 ${lostUnwaited}/${unwaited.tally.acknowledged.length}`
          )
          expect(lostWaited).toBe(0)
          // The other masters' entries survived the failover in b's cache (it wrote them last): all hits.
          const hitsBefore = (yield* b.cacheStats).hits
          yield* rest.stop
          for (const id of others) yield* b.retrieve(id)
          expect((yield* b.cacheStats).hits - hitsBefore).toBe(others.length)
          const before = hit.tally.ok
          yield* RedisServer.eventually(
            Effect.suspend(() => hit.tally.ok > before + 5 ? Effect.void : Effect.fail("not recovered"))
          )
          const okAgain = Date.now()
          yield* hit.stop
          yield* Workload.report(
            `cluster ${kind}: cluster settled ${settled - started} ms after the command; ` +
              `writes to its sessions ok again ${okAgain - started} ms after it ` +
              `(first failure ${
                hit.tally.firstFailure === undefined ? "none" : hit.tally.firstFailure - started
              } ms, ` +
              `recovered ${hit.tally.recoveredAt === undefined ? "-" : hit.tally.recoveredAt - started} ms), ` +
              `errors ${JSON.stringify(hit.tally.errors)}; other masters: ${rest.tally.ok} ok, errors ${
                JSON.stringify(rest.tally.errors)
              }`
          )
          onlyConnectionErrors(hit.tally)
          onlyConnectionErrors(waited.tally)
          // With one replica per master, WAIT 1 succeeds again on that master only once the killed node is
          // back as the replica of the promoted one.
          if (kind === "kill -9") yield* Effect.promise(() => cluster.restart(target, promoted))
          yield* RedisServer.eventually(w.create({ probe: true }), { timeoutMs: 20_000 })
          expect(rest.tally.errors).toEqual({})
          // The sessions moved to the promoted replica, and both instances are coherent on it.
          for (const id of affected) {
            expect((yield* Effect.promise(() => cluster.masterOf(`session:${id}`))).port).toBe(promoted.port)
          }
          yield* coherentAfter(a, b, ids, kind)
          expect((yield* a.cacheStats).mode).toBe("Tracking")
          expect((yield* b.cacheStats).mode).toBe("Tracking")
          // The first masters' sessions rotate: the next round fails over another master.
          const [first, ...more] = byMaster.entries()
          byMaster.delete(first![0])
          byMaster.set(promoted.port, first![1])
          void more
        }
      }).pipe(RedisServer.hangGuard(50_000, "cluster failovers")),
    60_000
  )

  it.scopedLive("a master whose tracking table is full stops caching its slots, and stays coherent", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisCluster.scoped
      const a = yield* instance(cluster.settings({ commandTimeout: "1 second" }))
      const b = yield* instance(cluster.settings({ commandTimeout: "1 second", cache: { enabled: false } }))
      const masters = yield* Effect.promise(() => cluster.masters())
      const full = masters[0]!
      yield* Effect.promise(() => full.client().config("SET", "tracking-table-max-keys", "5"))
      const byMaster = yield* spread(a, cluster, 20)
      // That master forgets our keys silently (our own commands make it forget): a notices.
      yield* RedisServer.eventually(
        Effect.flatMap(a.cacheStats, (stats) => stats.mode === "Off" ? Effect.void : Effect.fail(stats)),
        { timeoutMs: 15_000, intervalMs: 10 }
      )
      const ids = [...byMaster.values()].flat()
      for (const id of ids) yield* a.retrieve(id)
      for (const id of ids) yield* setField(b, id, `b:${id}`)
      for (const id of ids) yield* untilSeen(a, id, `b:${id}`)
      // The other masters' sessions are still served from the cache.
      const other = byMaster.get(masters[1]!.port)![0]!
      const hits = (yield* a.cacheStats).hits
      yield* a.retrieve(other)
      expect((yield* a.cacheStats).hits - hits).toBe(1)
      // With room again, every slot is tracked again.
      yield* Effect.promise(() => full.client().config("SET", "tracking-table-max-keys", "0"))
      yield* RedisServer.eventually(
        Effect.flatMap(a.cacheStats, (stats) => stats.mode === "Tracking" ? Effect.void : Effect.fail(stats)),
        { timeoutMs: 15_000, intervalMs: 10 }
      )
    }).pipe(RedisServer.hangGuard(90_000, "cluster tracking table")))

  it.scopedLive("refuses what a Cluster cannot do, naming the field; an unreachable cluster fails typed", () =>
    Effect.gen(function*() {
      const build = (settings: SessionConfig.Input) => Effect.flip(Layer.build(SessionStore.layer(settings)))
      const seeds = ["127.0.0.1:1"]
      const legacy = yield* build({ cluster: seeds, legacyPrefix: "sess:" })
      expect(legacy._tag === "SessionConfigError" && legacy.field).toBe("legacyPrefix")
      const down = yield* build({ cluster: seeds, connectTimeout: "300 millis" })
      expect(down._tag).toBe("RedisConnectionError")
    }).pipe(RedisServer.hangGuard(10_000, "an unreachable cluster")))
})
