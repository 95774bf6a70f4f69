/**
 * Per-key tracking: Redis tells an instance only about the sessions it read,
 * and every write of ours ends with a read, so that the next foreign write
 * still reaches our cache. Real redis-server processes; waits poll for a
 * condition under a loose hang guard, and nothing asserts on time.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import type { Redis } from "ioredis"
import type { SessionStore } from "../src/index.js"
import * as Session from "../src/internal/codec.js"
import { RedisServer } from "./support/index.js"
import { instance } from "./support/Stores.js"

type Store = SessionStore.SessionStore

const guard = RedisServer.hangGuard
const promise = <A>(f: () => Promise<A>) => Effect.promise(f)
const keyOf = (id: string) => `session:${id}`

/** Whether `store` serves `id` from its near-cache (a retrieve that sends no command). */
const isCached = (server: RedisServer.RedisServer, store: Store, id: string) =>
  Effect.map(server.countCommands(store.retrieve(id)), ({ total }) => total === 0)

/** A foreign write that keeps the library's contract: it bumps the version in its own transaction. */
const foreignWrite = (raw: Redis, id: string, value: string) =>
  promise(() => raw.multi().hset(keyOf(id), "b", JSON.stringify(value)).hincrby(keyOf(id), "$v", 1).exec())

/** Polls until `store` serves `value` for field `b`. */
const untilSeen = (store: Store, id: string, value: string) =>
  RedisServer.eventually(
    Effect.flatMap(store.retrieve(id), (found) =>
      Option.getOrThrow(found).data.b === value ? Effect.void : Effect.fail(Option.getOrThrow(found).data)),
    { timeoutMs: 15_000, intervalMs: 5 }
  )

describe("per-key tracking", () => {
  // Each of our own writes must leave the key tracked: Redis forgets a client's interest in a key
  // when the key is written, the client's own write included, unless the write ends with a read.
  const ownWrites: ReadonlyArray<
    readonly [string, (store: Store, server: RedisServer.RedisServer) => Effect.Effect<string, unknown>]
  > = [
    ["create", (store) => Effect.map(store.create({ a: 1 }), (s) => s.id)],
    ["create under a given id", (store) => Effect.map(store.create({ a: 1 }, { id: Session.makeId() }), (s) => s.id)],
    ["create bound to a user", (store) => Effect.map(store.create({ a: 1 }, { user: "ada" }), (s) => s.id)],
    ["flush", (store) =>
      Effect.gen(function*() {
        const created = yield* store.create({ a: 1 })
        yield* store.flush({ ...created, data: { a: 2 } })
        return created.id
      })],
    ["flush of a bound session", (store) =>
      Effect.gen(function*() {
        const created = yield* store.create({ a: 1 }, { user: "ada" })
        yield* store.flush({ ...created, data: { a: 2 } })
        return created.id
      })],
    ["flush without changes", (store) =>
      Effect.gen(function*() {
        const created = yield* store.create({ a: 1 })
        yield* store.flush(created)
        return created.id
      })],
    ["touch", (store) =>
      Effect.gen(function*() {
        const created = yield* store.create({ a: 1 })
        yield* store.touch(created.id)
        return created.id
      })],
    ["a miss", (store, server) =>
      Effect.gen(function*() {
        const id = Session.makeId()
        yield* promise(() => server.client().hset(keyOf(id), "$c", String(Date.now()), "$v", "1", "a", "1"))
        yield* store.retrieve(id)
        return id
      })]
  ]

  for (const [name, write] of ownWrites) {
    it.scopedLive(`after our own ${name}, the entry is cached and a foreign write still reaches it`, () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.scoped()
        const raw = server.client()
        const store = yield* instance(server.settings())
        const id = yield* write(store, server)
        expect(yield* isCached(server, store, id)).toBe(true)
        yield* foreignWrite(raw, id, "from B")
        yield* untilSeen(store, id, "from B")
        // Once re-read, the key is tracked again: the next foreign write reaches us too.
        yield* foreignWrite(raw, id, "again")
        yield* untilSeen(store, id, "again")
      }).pipe(guard(30_000, name)))
  }

  it.scopedLive("after a due lifetime refresh on a hit, a foreign write still reaches the cache", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      // A tenth of 2 s: once the TTL is below 1.8 s, the next hit refreshes it.
      const store = yield* instance(server.settings({ expire: 2 }))
      const created = yield* store.create({ a: 1 })
      yield* RedisServer.eventually(
        Effect.flatMap(
          promise(() => raw.pttl(keyOf(created.id))),
          (pttl) => pttl < 1700 ? Effect.void : Effect.fail("not due")
        ),
        { intervalMs: 25 }
      )
      const refreshed = yield* server.countCommands(store.retrieve(created.id))
      expect(refreshed.commands["pexpire"]).toBe(1)
      expect(yield* isCached(server, store, created.id)).toBe(true)
      yield* foreignWrite(raw, created.id, "from B")
      yield* untilSeen(store, created.id, "from B")
    }).pipe(guard(30_000, "refresh")))

  it.scopedLive("an instance that never read a session receives nothing when others write it", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const writer = yield* instance(server.settings())
      const idle = yield* instance(server.settings())
      // The idle instance holds one session of its own.
      const own = yield* idle.create({ a: 0 })
      for (let i = 0; i < 50; i++) {
        const created = yield* writer.create({ n: 0 })
        for (let n = 1; n <= 3; n++) yield* writer.flush({ ...created, data: { n } })
      }
      expect((yield* idle.cacheStats).received).toBe(0)
      // A barrier: a write to the idle instance's own session is announced to it, after everything
      // Redis would have announced of the writes above (one connection delivers them in order).
      const ownSession = Option.getOrThrow(yield* writer.retrieve(own.id))
      yield* writer.flush({ ...ownSession, data: { a: 1 } })
      yield* RedisServer.eventually(
        Effect.flatMap(idle.cacheStats, (stats) => stats.received > 0 ? Effect.void : Effect.fail("not yet")),
        { timeoutMs: 15_000, intervalMs: 5 }
      )
      expect((yield* idle.cacheStats).received).toBe(1)
    }).pipe(guard(30_000, "idle instance")))

  it.scopedLive("with cache.tracking \"broadcast\", every instance hears of every write, and stays coherent", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      const writer = yield* instance(server.settings({ cache: { tracking: "broadcast" } }))
      const idle = yield* instance(server.settings({ cache: { tracking: "broadcast" } }))
      const created = yield* writer.create({ a: 0 })
      yield* writer.flush({ ...created, data: { a: 1 } })
      yield* RedisServer.eventually(
        Effect.flatMap(idle.cacheStats, (stats) => stats.received >= 2 ? Effect.void : Effect.fail("not yet")),
        { timeoutMs: 15_000, intervalMs: 5 }
      )
      // Broadcasting writes with MULTI (a script's writes would be announced to the writer itself).
      const flushed = yield* server.countCommands(
        Effect.flatMap(writer.retrieve(created.id), (s) => writer.flush({ ...Option.getOrThrow(s), data: { a: 2 } }))
      )
      expect(flushed.commands["evalsha"]).toBeUndefined()
      expect(yield* isCached(server, writer, created.id)).toBe(true)
      yield* foreignWrite(raw, created.id, "from B")
      yield* untilSeen(writer, created.id, "from B")
    }).pipe(guard(30_000, "broadcast")))

  it.scopedLive("where scripts are refused, writes fall back to MULTI, warn once, and stay coherent", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      yield* promise(() => raw.call("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@all", "-@scripting"))
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      })
      const store = yield* instance(server.settings({ username: "app", password: "app-password" })).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(warnings.filter((w) => /refuses scripts/.test(w))).toHaveLength(1)
      const created = yield* store.create({ a: 1 }, { user: "ada" })
      const flushed = yield* server.countCommands(store.flush({ ...created, data: { a: 2 } }))
      expect(flushed.commands["multi"]).toBe(1)
      expect(flushed.commands["evalsha"]).toBeUndefined()
      expect(yield* isCached(server, store, created.id)).toBe(true)
      expect(Option.getOrThrow(yield* store.retrieve(created.id)).data).toEqual({ a: 2 })
      // The fallback's writes end with a read too: a foreign write reaches the cache.
      yield* foreignWrite(raw, created.id, "from B")
      yield* untilSeen(store, created.id, "from B")
      // A flush of a session destroyed meanwhile does not bring it back.
      const read = Option.getOrThrow(yield* store.retrieve(created.id))
      yield* promise(() => raw.del(keyOf(created.id)))
      yield* store.flush({ ...read, data: { a: 3 } })
      expect(yield* store.retrieve(created.id)).toEqual(Option.none())
      expect((yield* store.sessionsOf("ada")).length).toBe(0)
    }).pipe(guard(30_000, "fallback")))

  it.scopedLive("tracking-table-max-keys evicting our keys leaves the cache coherent", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      yield* promise(() => raw.config("SET", "tracking-table-max-keys", "20"))
      const store = yield* instance(server.settings({ cache: { maxStaleness: 200 } }))
      const ids: Array<string> = []
      for (let i = 0; i < 100; i++) ids.push((yield* store.create({ a: i })).id)
      // Redis forgets our keys past 20, silently (our own commands made it forget): the store sees
      // the table full and serves entries for a bounded staleness only.
      yield* RedisServer.eventually(
        Effect.flatMap(store.cacheStats, (stats) => stats.mode === "Staleness" ? Effect.void : Effect.fail(stats)),
        { timeoutMs: 15_000, intervalMs: 10 }
      )
      for (const id of ids) yield* foreignWrite(raw, id, "from B")
      for (const id of ids) yield* untilSeen(store, id, "from B")
      // With room again, tracking is back, and coherent.
      yield* promise(() => raw.config("SET", "tracking-table-max-keys", "0"))
      yield* RedisServer.eventually(
        Effect.flatMap(store.cacheStats, (stats) => stats.mode === "Tracking" ? Effect.void : Effect.fail(stats)),
        { timeoutMs: 15_000, intervalMs: 10 }
      )
      const again = yield* store.create({ a: 0 })
      expect(yield* isCached(server, store, again.id)).toBe(true)
      yield* foreignWrite(raw, again.id, "from B")
      yield* untilSeen(store, again.id, "from B")
    }).pipe(guard(60_000, "tracking table")))
})
