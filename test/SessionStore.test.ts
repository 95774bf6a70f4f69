import { describe, expect, it, layer, vi } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import type { Redis } from "ioredis"
import { readFileSync } from "node:fs"
import * as net from "node:net"
import { addToCart } from "../examples/promise.js"
import { type SessionConfig, SessionStore } from "../src/index.js"
import * as Session from "../src/internal/codec.js"
import { change, dataOf, retrieveSome, sessionStoreSpec } from "./SessionStoreSpec.js"
import { RedisServer } from "./support/index.js"

const Store = SessionStore.SessionStore

/** A Redis store for the rest of the scope. */
const build = (settings: SessionConfig.Input) =>
  Effect.map(Layer.build(SessionStore.layer(settings)), Context.get(Store))

/** A layer with its own redis-server, stopped with the layer. */
const redisLayer = (extra: Omit<SessionConfig.Input, "server" | "sock" | "url"> = {}) =>
  Layer.unwrapScoped(Effect.map(RedisServer.scoped(), (server) => SessionStore.layer(server.settings(extra))))

const guard = RedisServer.hangGuard
const promise = <A>(f: () => Promise<A>) => Effect.promise(f)
const keyOf = (id: string, prefix = "session:") => prefix + id

/** A port nothing listens on (bound a moment ago, then released). */
const closedPort = promise(() =>
  new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address()
      probe.close(() => resolve(typeof address === "object" && address !== null ? address.port : 1))
    })
  })
)

/** Waits, polling Redis directly (a retrieve would slide the TTL), until the key is gone. */
const untilKeyGone = (raw: Redis, key: string) =>
  RedisServer.eventually(
    Effect.flatMap(promise(() => raw.exists(key)), (n) => n === 0 ? Effect.void : Effect.fail(`${key} still exists`)),
    { timeoutMs: 15_000, intervalMs: 50 }
  )

// ---------------------------------------------------------------------------------------------
// The shared behavioural spec, for every backend.

sessionStoreSpec("SessionStore spec: memory", SessionStore.layerMemory({ expire: "60 seconds" }), {
  backend: "memory",
  expireSeconds: 60
})
sessionStoreSpec("SessionStore spec: redis, cache on", redisLayer({ expire: 60 }), {
  backend: "redis",
  expireSeconds: 60
})
sessionStoreSpec("SessionStore spec: redis, cache off", redisLayer({ expire: 60, cache: { enabled: false } }), {
  backend: "redis",
  expireSeconds: 60
})
sessionStoreSpec(
  "SessionStore spec: redis, cache without tracking",
  redisLayer({ expire: 60, cache: { tracking: false } }),
  {
    backend: "redis",
    expireSeconds: 60
  }
)

// ---------------------------------------------------------------------------------------------

// With TestServices (the default): TestClock drives the memory backend's expiry.
layer(SessionStore.layerMemory({ expire: "10 seconds" }))("SessionStore memory backend (TestClock)", (it) => {
  it.effect("a session expires after its lifetime", () =>
    Effect.gen(function*() {
      const store = yield* Store
      const created = yield* store.create({ a: 1 })
      yield* TestClock.adjust("9 seconds")
      expect(Option.isSome(yield* store.retrieve(created.id))).toBe(true)
      yield* TestClock.adjust("10001 millis")
      expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
    }))

  it.effect("retrieve and touch slide the lifetime; flush refreshes it", () =>
    Effect.gen(function*() {
      const store = yield* Store
      const created = yield* store.create({ a: 1 })
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("6 seconds")
        yield* store.retrieve(created.id)
      }
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("6 seconds")
        yield* store.touch(created.id)
      }
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("6 seconds")
        yield* store.flush(change(created, { i }))
      }
      yield* TestClock.adjust("6 seconds")
      expect(yield* dataOf(created.id)).toEqual({ a: 1, i: 2 })
    }))

  it.effect("a session's own lifetime: reads slide it, and it ends that long after the last one", () =>
    Effect.gen(function*() {
      const store = yield* Store
      const short = yield* store.create({ a: 1 }, { expire: "3 seconds" })
      const long = yield* store.create({ b: 1 }, { expire: "60 seconds" })
      yield* TestClock.adjust("2 seconds")
      expect((yield* retrieveSome(short.id)).refreshed).toBe(true)
      yield* TestClock.adjust("2 seconds")
      expect(Option.isSome(yield* store.retrieve(short.id))).toBe(true)
      yield* TestClock.adjust("3001 millis")
      expect(Option.isNone(yield* store.retrieve(short.id))).toBe(true)
      // Past the store's 10 s, within its own minute.
      expect((yield* retrieveSome(long.id)).data).toEqual({ b: 1 })
    }))

  it.effect("an expired session stays gone when a stale copy is flushed or touched", () =>
    Effect.gen(function*() {
      const store = yield* Store
      const created = yield* store.create({ a: 1 })
      yield* TestClock.adjust("11 seconds")
      yield* store.flush(change(created, { a: 2 }))
      yield* store.touch(created.id)
      expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
    }))
})

// ---------------------------------------------------------------------------------------------

layer(RedisServer.layer(), { excludeTestServices: true })("SessionStore redis backend", (it) => {
  describe("connections", () => {
    it.scoped("TCP: a session written through the store is a hash at prefix + id", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ expire: 120 }))
        const created = yield* store.create({ user: "alice", n: 1, $c: "mine" })
        const raw = server.client()
        const hash = yield* promise(() => raw.hgetall(keyOf(created.id)))
        expect(Number(hash.$c)).toBe(created.createdAt)
        expect(hash.user).toBe("\"alice\"")
        expect(hash.n).toBe("1")
        expect(hash.$$c).toBe("\"mine\"")
        const pttl = yield* promise(() => raw.pttl(keyOf(created.id)))
        expect(pttl).toBeGreaterThan(0)
        expect(pttl).toBeLessThanOrEqual(120_000)
      }))

    it.scoped("unix socket", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.scoped({ unixSocket: true })
        const store = yield* build(server.settings())
        const created = yield* store.create({ via: "socket" })
        expect((yield* retrieveSome(created.id).pipe(Effect.provideService(Store, store))).data).toEqual({
          via: "socket"
        })
        expect(yield* promise(() => server.client().exists(keyOf(created.id)))).toBe(1)
      }))

    it.scoped("requirepass: the right password (plain or Redacted) connects", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.scoped({ password: "correct horse" })
        const plain = yield* build(server.settings())
        const created = yield* plain.create({ a: 1 })
        const redacted = yield* build({ server: server.server, password: Redacted.make("correct horse") })
        expect(Option.isSome(yield* redacted.retrieve(created.id))).toBe(true)
        const viaUrl = yield* build({ url: server.url })
        expect(Option.isSome(yield* viaUrl.retrieve(created.id))).toBe(true)
      }))

    it.scoped("requirepass: a wrong or missing password fails the layer with reason Authentication", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.scoped({ password: "correct horse" })
        for (const settings of [{ server: server.server, password: "wrong" }, { server: server.server }]) {
          const error = yield* Effect.flip(build({ ...settings, connectTimeout: 2000 })).pipe(
            guard(20_000, "layer build")
          )
          expect(error._tag).toBe("RedisConnectionError")
          expect(error._tag === "RedisConnectionError" && error.reason).toBe("Authentication")
          // The password never shows up in the error.
          expect(String(error)).not.toContain("wrong")
        }
      }))

    it.scoped("nothing listening: the layer fails with RedisConnectionError, without hanging", () =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const error = yield* Effect.flip(build({ server: `127.0.0.1:${port}`, connectTimeout: 1000 })).pipe(
          guard(20_000, "layer build against a closed port")
        )
        expect(error._tag).toBe("RedisConnectionError")
        expect(["Refused", "Timeout"]).toContain(error._tag === "RedisConnectionError" ? error.reason : undefined)
        const socketError = yield* Effect.flip(build({ sock: "/nonexistent/dir/redis.sock", connectTimeout: 1000 }))
          .pipe(
            guard(20_000, "layer build against a missing socket")
          )
        expect(socketError._tag).toBe("RedisConnectionError")
      }))

    it.scoped("database 3: keys land in db 3, not db 0", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ database: 3, prefix: "db3test:" }))
        const created = yield* store.create({ a: 1 })
        const db0 = server.client({ db: 0 })
        const db3 = server.client({ db: 3 })
        expect(yield* promise(() => db3.exists(keyOf(created.id, "db3test:")))).toBe(1)
        expect(yield* promise(() => db0.exists(keyOf(created.id, "db3test:")))).toBe(0)
        expect(yield* promise(() => db0.keys("db3test:*"))).toEqual([])
        expect(yield* promise(() => db3.keys("db3test:*"))).toEqual([keyOf(created.id, "db3test:")])
      }))

    it.scoped("url: the database in the url path is used", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build({ url: `${server.url}/5`, prefix: "db5url:" })
        const created = yield* store.create({ a: 1 })
        expect(yield* promise(() => server.client({ db: 5 }).exists(keyOf(created.id, "db5url:")))).toBe(1)
        expect(yield* promise(() => server.client({ db: 0 }).exists(keyOf(created.id, "db5url:")))).toBe(0)
      }))

    it.scoped("url without a path: the database setting is used", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build({ url: server.url, database: 6, prefix: "db6url:" })
        const created = yield* store.create({ a: 1 })
        expect(yield* promise(() => server.client({ db: 6 }).exists(keyOf(created.id, "db6url:")))).toBe(1)
      }))

    it.scoped("prefix: keys use it, and two prefixes on one server do not see each other", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const a = yield* build(server.settings({ prefix: "appA:" }))
        const b = yield* build(server.settings({ prefix: "appB:" }))
        const created = yield* a.create({ app: "A" })
        expect(yield* promise(() => server.client().exists(`appA:${created.id}`))).toBe(1)
        expect(Option.isNone(yield* b.retrieve(created.id))).toBe(true)
      }))

    it.scoped("invalid settings fail the layer with a SessionConfigError naming the field", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const error = yield* Effect.flip(build(server.settings({ database: -1 })))
        expect(error._tag).toBe("SessionConfigError")
        expect(error._tag === "SessionConfigError" && error.field).toBe("database")
        const unknown = yield* Effect.flip(
          Layer.build(SessionStore.layer({ server: server.server, expires: 1 } as SessionConfig.Input))
        )
        expect(unknown._tag === "SessionConfigError" && unknown.field).toBe("expires")
      }))

    it.scoped("layerConfig reads REDIS_SESSION_* through Effect Config", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const provider = ConfigProvider.fromMap(
          new Map([
            ["REDIS_SESSION_SERVER", server.server],
            ["REDIS_SESSION_DATABASE", "2"],
            ["REDIS_SESSION_EXPIRE", "2 minutes"],
            ["REDIS_SESSION_PREFIX", "cfg:"]
          ]),
          { pathDelim: "_" }
        )
        const context = yield* Layer.build(
          SessionStore.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(provider)))
        )
        const store = Context.get(context, Store)
        expect(Duration.toSeconds(store.expire)).toBe(120)
        const created = yield* store.create({ a: 1 })
        expect(yield* promise(() => server.client({ db: 2 }).exists(`cfg:${created.id}`))).toBe(1)
      }))

    it.scoped("layerConfig with a bad REDIS_SESSION_DATABASE fails with a ConfigError naming it", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        for (const database of ["three", "-1"]) {
          const provider = ConfigProvider.fromMap(
            new Map([["REDIS_SESSION_SERVER", server.server], ["REDIS_SESSION_DATABASE", database]]),
            { pathDelim: "_" }
          )
          const error = yield* Effect.flip(
            Layer.build(SessionStore.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(provider))))
          )
          expect(String(error)).toContain("DATABASE")
        }
      }))
  })

  describe("round trips and lifetime", () => {
    it.scoped("destroy deletes the key", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const created = yield* store.create({ a: 1 })
        yield* store.destroy(created.id)
        expect(yield* promise(() => server.client().exists(keyOf(created.id)))).toBe(0)
      }))

    it.scoped("a stale flush after destroy leaves no live hash behind", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        for (const cache of [true, false]) {
          const store = yield* build(server.settings({ cache: { enabled: cache } }))
          const created = yield* store.create({ a: 1 })
          const stale = yield* store.retrieve(created.id).pipe(Effect.map(Option.getOrThrow))
          yield* store.destroy(created.id)
          yield* store.flush(change(stale, { a: 2, b: 3 }))
          expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
          expect(yield* promise(() => raw.hexists(keyOf(created.id), "$c"))).toBe(0)
          expect(yield* promise(() => raw.exists(keyOf(created.id)))).toBe(0)
        }
      }))

    it.scoped("expire 1 s: retrieve gives None once Redis expired the session (cache on and off), and a stale flush keeps it gone", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const cached = yield* build(server.settings({ expire: 1 }))
        const uncached = yield* build(server.settings({ expire: 1, cache: { enabled: false } }))
        const scenarios = [cached, uncached].map((store) =>
          Effect.gen(function*() {
            const created = yield* store.create({ a: 1 })
            const stale = yield* retrieveSome(created.id).pipe(Effect.provideService(Store, store))
            expect(yield* promise(() => raw.pttl(keyOf(created.id)))).toBeLessThanOrEqual(1000)
            yield* untilKeyGone(raw, keyOf(created.id))
            expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
            yield* store.flush(change(stale, { a: 2 }))
            yield* store.touch(created.id)
            expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
            expect(yield* promise(() => raw.hexists(keyOf(created.id), "$c"))).toBe(0)
          })
        )
        yield* Effect.all(scenarios, { concurrency: "unbounded" }).pipe(guard(30_000, "expiry"))
      }))

    it.scoped("retrieve, touch and flush refresh the TTL (cache off)", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const store = yield* build(server.settings({ expire: 600, cache: { enabled: false } }))
        const created = yield* store.create({ a: 1 })
        const key = keyOf(created.id)
        const shorten = promise(() => raw.pexpire(key, 5000)).pipe(
          Effect.zipRight(promise(() => raw.pttl(key))),
          Effect.tap((pttl) => expect(pttl).toBeLessThanOrEqual(5000))
        )
        const pttl = promise(() => raw.pttl(key))
        yield* shorten
        yield* store.retrieve(created.id)
        expect(yield* pttl).toBeGreaterThan(500_000)
        yield* shorten
        yield* store.touch(created.id)
        expect(yield* pttl).toBeGreaterThan(500_000)
        yield* shorten
        yield* store.flush(change(created, { a: 2 }))
        expect(yield* pttl).toBeGreaterThan(500_000)
        yield* shorten
        yield* store.flush(created)
        expect(yield* pttl).toBeGreaterThan(500_000)
      }))

    it.scoped("touch refreshes the TTL with the cache on too", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const store = yield* build(server.settings({ expire: 600 }))
        const created = yield* store.create({ a: 1 })
        yield* store.retrieve(created.id)
        yield* promise(() => raw.pexpire(keyOf(created.id), 5000))
        yield* store.touch(created.id)
        expect(yield* promise(() => raw.pttl(keyOf(created.id)))).toBeGreaterThan(500_000)
      }))

    it.scoped("a session's own lifetime: the hash holds $e, and PEXPIRE and the refresh cadence follow it", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const store = yield* build(server.settings({ expire: 600 }))
        // Own lifetime 2 s, in a store whose own is 10 minutes: a tenth of 2 s is what a hit waits.
        const created = yield* store.create({ a: 1 }, { expire: 2 })
        const key = keyOf(created.id)
        expect(yield* promise(() => raw.hget(key, Session.expireField))).toBe("2000")
        expect(yield* promise(() => raw.pttl(key))).toBeLessThanOrEqual(2000)
        yield* RedisServer.eventually(
          Effect.flatMap(promise(() => raw.pttl(key)), (pttl) => pttl < 1700 ? Effect.void : Effect.fail("not yet")),
          { intervalMs: 25 }
        )
        const hit = yield* retrieveSome(created.id).pipe(Effect.provideService(Store, store))
        expect(hit.refreshed).toBe(true)
        const pttl = yield* promise(() => raw.pttl(key))
        expect(pttl).toBeGreaterThan(1750)
        expect(pttl).toBeLessThanOrEqual(2000)
        // A flush with another lifetime: written with the data, in the same script, and PEXPIREd with it.
        const { commands } = yield* server.countCommands(
          store.flush({ ...change(hit, { a: 2 }), expire: Duration.hours(1) })
        )
        expect(commands).toEqual({ evalsha: 1, hexists: 1, hset: 1, hincrby: 1, pexpire: 1, hget: 1 })
        expect(yield* promise(() => raw.hget(key, Session.expireField))).toBe("3600000")
        expect(yield* promise(() => raw.pttl(key))).toBeGreaterThan(3_500_000)
        // Another instance's touch (not cached there) reads the lifetime and uses it.
        const other = yield* build(server.settings({ expire: 600 }))
        yield* promise(() => raw.pexpire(key, 5000))
        yield* other.touch(created.id)
        expect(yield* promise(() => raw.pttl(key))).toBeGreaterThan(3_500_000)
        // Back to the store's: the field goes, and the TTL is the store's.
        const read = yield* retrieveSome(created.id).pipe(Effect.provideService(Store, store))
        yield* store.flush({ ...read, expire: undefined })
        expect(yield* promise(() => raw.hexists(key, Session.expireField))).toBe(0)
        expect(yield* promise(() => raw.pttl(key))).toBeLessThanOrEqual(600_000)
      }).pipe(guard(20_000, "own lifetime")))

    it.scoped("absoluteExpire caps a session's own lifetime too", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const store = yield* build(server.settings({ expire: 600, absoluteExpire: 30 }))
        const created = yield* store.create({ a: 1 }, { expire: "30 days" })
        expect(yield* promise(() => raw.pttl(keyOf(created.id)))).toBeLessThanOrEqual(30_000)
        yield* store.flush({ ...created, expire: Duration.days(60) })
        expect(yield* promise(() => raw.pttl(keyOf(created.id)))).toBeLessThanOrEqual(30_000)
        yield* store.touch(created.id)
        expect(yield* promise(() => raw.pttl(keyOf(created.id)))).toBeLessThanOrEqual(30_000)
      }))

    it.scoped("a hit refreshes the TTL once a tenth of the lifetime has passed", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        // A tenth of 2 s is 200 ms: wait for that by polling, then a cached read must slide the TTL.
        const store = yield* build(server.settings({ expire: 2 }))
        const created = yield* store.create({ a: 1 })
        const key = keyOf(created.id)
        yield* RedisServer.eventually(
          Effect.flatMap(promise(() => raw.pttl(key)), (pttl) => pttl < 1700 ? Effect.void : Effect.fail("not yet")),
          { intervalMs: 25 }
        )
        yield* retrieveSome(created.id).pipe(Effect.provideService(Store, store))
        expect(yield* promise(() => raw.pttl(key))).toBeGreaterThan(1750)
      }).pipe(guard(20_000, "sliding refresh")))
  })

  describe("near-cache", () => {
    it.scoped("after the first retrieve, 20 more retrieves send nothing to Redis", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const created = yield* store.create({ a: 1 })
        yield* store.retrieve(created.id)
        const { commands, total, value } = yield* server.countCommands(
          Effect.all(Array.from({ length: 20 }, () => store.retrieve(created.id)))
        )
        expect(commands).toEqual({})
        expect(total).toBe(0)
        value.forEach((s) => expect(Option.getOrThrow(s).data).toEqual({ a: 1 }))
      }))

    it.scoped("with the cache off, every retrieve goes to Redis", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ cache: { enabled: false } }))
        const created = yield* store.create({ a: 1 })
        yield* store.retrieve(created.id)
        const { commands } = yield* server.countCommands(
          Effect.all(Array.from({ length: 5 }, () => store.retrieve(created.id)))
        )
        expect(commands.hgetall).toBe(5)
      }))

    it.scoped("capacity 2: the least recently used session is evicted and costs a command again", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ cache: { capacity: 2 } }))
        const [s1, s2, s3] = yield* Effect.all([store.create({ n: 1 }), store.create({ n: 2 }), store.create({ n: 3 })])
        for (const s of [s1!, s2!, s3!]) yield* store.retrieve(s.id)
        const count = (id: string) => Effect.map(server.countCommands(store.retrieve(id)), (c) => c.total)
        expect(yield* count(s3!.id)).toBe(0)
        expect(yield* count(s2!.id)).toBe(0)
        expect(yield* count(s1!.id)).toBeGreaterThan(0)
        // s1 came back in and pushed out s3, the least recently used now.
        expect(yield* count(s1!.id)).toBe(0)
        expect(yield* count(s3!.id)).toBeGreaterThan(0)
      }))

    it.scoped("a write from another instance reaches this instance's cache", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const a = yield* build(server.settings())
        const b = yield* build(server.settings())
        const created = yield* a.create({ n: 0 })
        yield* a.retrieve(created.id)
        const fromB = yield* b.retrieve(created.id).pipe(Effect.map(Option.getOrThrow))
        yield* b.flush(change(fromB, { n: 1 }))
        yield* RedisServer.eventually(
          Effect.flatMap(a.retrieve(created.id), (s) =>
            Option.getOrThrow(s).data.n === 1 ? Effect.void : Effect.fail("stale")),
          { timeoutMs: 10_000, intervalMs: 5 }
        )
        yield* b.destroy(created.id)
        yield* RedisServer.eventually(
          Effect.flatMap(a.retrieve(created.id), (s) =>
            Option.isNone(s) ? Effect.void : Effect.fail("still cached")),
          { timeoutMs: 10_000, intervalMs: 5 }
        )
      }).pipe(guard(30_000, "invalidation")))

    it.scoped("raw writes and FLUSHDB invalidate the cache", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ database: 9 }))
        const created = yield* store.create({ n: 0 })
        yield* store.retrieve(created.id)
        yield* promise(() => server.client({ db: 9 }).hset(keyOf(created.id), "n", "42"))
        yield* RedisServer.eventually(
          Effect.flatMap(store.retrieve(created.id), (s) =>
            Option.getOrThrow(s).data.n === 42 ? Effect.void : Effect.fail("stale")),
          { timeoutMs: 10_000, intervalMs: 5 }
        )
        yield* promise(() =>
          server.client({ db: 9 }).flushdb()
        )
        yield* RedisServer.eventually(
          Effect.flatMap(
            store.retrieve(created.id),
            (s) => Option.isNone(s) ? Effect.void : Effect.fail("still cached")
          ),
          { timeoutMs: 10_000, intervalMs: 5 }
        )
      }).pipe(guard(30_000, "raw invalidation")))

    it.scoped("tracking off: another instance's write is seen once maxStaleness has passed", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const a = yield* build(server.settings({ cache: { tracking: false, maxStaleness: 100 } }))
        const b = yield* build(server.settings({ cache: { enabled: false } }))
        const created = yield* a.create({ n: 0 })
        yield* a.retrieve(created.id)
        yield* b.flush(change(Option.getOrThrow(yield* b.retrieve(created.id)), { n: 1 }))
        yield* RedisServer.eventually(
          Effect.flatMap(
            a.retrieve(created.id),
            (s) => Option.getOrThrow(s).data.n === 1 ? Effect.void : Effect.fail("stale")
          ),
          { timeoutMs: 10_000, intervalMs: 10 }
        )
      }).pipe(guard(30_000, "staleness bound")))

    it.scoped("mutating a returned value (top level or nested) does not change the next retrieve", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const created = yield* store.create({ profile: { name: "alice", tags: ["a"] } })
        const read = yield* retrieveSome(created.id).pipe(Effect.provideService(Store, store))
        const data: Record<string, unknown> = read.data
        const profile = data.profile as { name: string; tags: Array<string> }
        expect(() => {
          data.profile = "x"
        }).toThrow(TypeError)
        expect(() => {
          profile.name = "mallory"
        }).toThrow(TypeError)
        expect(() => profile.tags.push("admin")).toThrow(TypeError)
        // The next retrieve is a cache hit (no command), with the original value.
        const { total, value } = yield* server.countCommands(store.retrieve(created.id))
        expect(total).toBe(0)
        expect(Option.getOrThrow(value).data).toEqual({ profile: { name: "alice", tags: ["a"] } })
      }))
  })

  // Redis BCAST tracking remembers, per key and per event-loop cycle, only the *last* client that
  // modified it, and NOLOOP then hides the change from that client (tracking.c,
  // trackingRememberKeyToBroadcast: raxInsert). When another writer's change and our own write to
  // the same session land in one cycle, ours last, we are never told about theirs. Freezing the
  // server with SIGSTOP while both commands arrive puts them in one cycle deterministically.
  // What tells us is the session's version field ($v), which every data-changing write bumps in its
  // own transaction: the other writer is another instance, or a raw client that keeps that contract.
  describe("near-cache coherence when two writes land in one Redis event-loop cycle", () => {
    /** Freezes the server, sends `first` then `second`, waits until both have arrived, and thaws it. */
    const inOneCycle = <A, B, E1, E2>(
      server: RedisServer.RedisServer,
      first: Effect.Effect<A, E1>,
      second: Effect.Effect<B, E2>
    ) =>
      Effect.gen(function*() {
        const arrived = (n: number) =>
          RedisServer.eventually(
            Effect.suspend(() => server.connectionsWithUnreadInput() >= n ? Effect.void : Effect.fail("in flight")),
            {
              timeoutMs: 5_000,
              intervalMs: 1
            }
          )
        server.freeze()
        const a = yield* Effect.fork(first)
        yield* arrived(1)
        const b = yield* Effect.fork(second)
        yield* arrived(2)
        server.thaw()
        return [yield* Fiber.join(a), yield* Fiber.join(b)] as const
      }).pipe(Effect.ensuring(Effect.sync(() => server.thaw())))

    /**
     * A server, a raw client and another instance that play the other writer (both already
     * connected), a store and one session it has cached.
     */
    const raceSetup = (extra: Omit<SessionConfig.Input, "server" | "sock" | "url"> = {}) =>
      Effect.gen(function*() {
        const server = yield* RedisServer.scoped()
        const raw = server.client()
        yield* promise(() => raw.ping())
        const store = yield* build(server.settings(extra))
        const other = yield* build(server.settings({ ...extra, cache: { enabled: false } }))
        const created = yield* store.create({ a: 0 })
        const fromOther = Option.getOrThrow(yield* other.retrieve(created.id))
        return { created, fromOther, other, raw, server, store }
      })

    /** A raw write that keeps the library's contract: it bumps the version in its own transaction. */
    const rawWrite = (raw: Redis, id: string) =>
      promise(() => raw.multi().hset(keyOf(id), "b", "\"from B\"").hincrby(keyOf(id), "$v", 1).exec())

    const seesForeignWrite = (store: SessionStore.SessionStore, id: string) =>
      RedisServer.eventually(
        Effect.flatMap(store.retrieve(id), (s) =>
          Option.getOrThrow(s).data.b === "from B" ? Effect.void : Effect.fail(Option.getOrThrow(s).data)),
        { timeoutMs: 3_000, intervalMs: 10 }
      )

    /** Whether `store` holds `id` in its near-cache (a retrieve that sends no command). */
    const isCached = (server: RedisServer.RedisServer, store: SessionStore.SessionStore, id: string) =>
      Effect.map(server.countCommands(store.retrieve(id)), ({ total }) => total === 0)

    it.scoped("a raw write (bumping the version) just before our flush is not hidden from our cache", () =>
      Effect.gen(function*() {
        const { created, raw, server, store } = yield* raceSetup()
        yield* inOneCycle(server, rawWrite(raw, created.id), store.flush(change(created, { a: 1 })))
        expect(yield* promise(() => raw.hgetall(keyOf(created.id)))).toMatchObject({ a: "1", b: "\"from B\"" })
        // The version did not land on ours + 1: the entry is not our delta patched onto what we read,
        // but what the script answered Redis holds (or nothing, when the invalidation came first).
        expect(Option.getOrThrow(yield* store.retrieve(created.id)).data).toEqual({ a: 1, b: "from B" })
      }).pipe(guard(30_000, "write race")))

    it.scoped("another instance's flush just before ours is not hidden from our cache, and both changes land", () =>
      Effect.gen(function*() {
        const { created, fromOther, other, raw, server, store } = yield* raceSetup()
        yield* inOneCycle(
          server,
          other.flush(change(fromOther, { b: "from B" })),
          store.flush(change(created, { a: 1 }))
        )
        expect(yield* promise(() => raw.hgetall(keyOf(created.id)))).toMatchObject({ a: "1", b: "\"from B\"" })
        yield* seesForeignWrite(store, created.id)
        expect(Option.getOrThrow(yield* store.retrieve(created.id)).data).toEqual({ a: 1, b: "from B" })
      }).pipe(guard(30_000, "instance write race")))

    it.scoped("a foreign write just before our touch is not hidden from our cache", () =>
      Effect.gen(function*() {
        const { created, fromOther, other, server, store } = yield* raceSetup()
        yield* store.retrieve(created.id)
        yield* inOneCycle(server, other.flush(change(fromOther, { b: "from B" })), store.touch(created.id))
        // The touch's reply carried the changed hash (or the invalidation came first): never the old copy.
        expect(Option.getOrThrow(yield* store.retrieve(created.id)).data.b).toBe("from B")
      }).pipe(guard(30_000, "touch race")))

    it.scoped("a foreign write just before a hit's lifetime refresh: the hit returns the new data", () =>
      Effect.gen(function*() {
        // A tenth of 2 s: once the TTL is below 1.8 s, the next hit refreshes it.
        const { created, raw, server, store } = yield* raceSetup({ expire: 2 })
        yield* store.retrieve(created.id)
        yield* RedisServer.eventually(
          Effect.flatMap(
            promise(() => raw.pttl(keyOf(created.id))),
            (pttl) => pttl < 1700 ? Effect.void : Effect.fail("not due")
          ),
          { intervalMs: 25 }
        )
        const [, read] = yield* inOneCycle(server, rawWrite(raw, created.id), store.retrieve(created.id))
        expect(Option.getOrThrow(read).data).toEqual({ a: 0, b: "from B" })
        // Cached or not (the foreign write's invalidation may revoke the fill), never stale:
        expect(Option.getOrThrow(yield* store.retrieve(created.id)).data).toEqual({ a: 0, b: "from B" })
      }).pipe(guard(30_000, "refresh race")))

    it.scoped("control: a foreign write just after our flush reaches our cache", () =>
      Effect.gen(function*() {
        const { created, raw, server, store } = yield* raceSetup()
        yield* inOneCycle(
          server,
          store.flush(change(created, { a: 1 })),
          promise(() => raw.hset(keyOf(created.id), "b", "\"from B\""))
        )
        yield* seesForeignWrite(store, created.id)
      }).pipe(guard(30_000, "write race control")))

    it.scoped("control: nothing else written, our flush and touch keep the entry", () =>
      Effect.gen(function*() {
        const { created, server, store } = yield* raceSetup()
        yield* store.flush(change(created, { a: 1 }))
        expect(yield* isCached(server, store, created.id)).toBe(true)
        yield* store.touch(created.id)
        expect(yield* isCached(server, store, created.id)).toBe(true)
        expect(Option.getOrThrow(yield* store.retrieve(created.id)).data).toEqual({ a: 1 })
      }).pipe(guard(30_000, "no race")))
  })

  describe("what each operation sends", () => {
    it.scoped("a one-field flush: one EVALSHA (HEXISTS, HSET, HINCRBY, PEXPIRE, HGET), no re-read; then hits", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const created = yield* store.create({ a: 1, b: [1, 2, 3] })
        // A session starts at version 1: HINCRBY's reply tells alone whether it was alive.
        expect(yield* promise(() => server.client().hget(keyOf(created.id), "$v"))).toBe("1")
        const { commands } = yield* server.countCommands(store.flush(change(created, { a: 2 })))
        expect(commands).toEqual({ evalsha: 1, hexists: 1, hset: 1, hincrby: 1, pexpire: 1, hget: 1 })
        // What we wrote is what we serve, without asking Redis.
        const read = yield* server.countCommands(store.retrieve(created.id))
        expect(read.total).toBe(0)
        expect(Option.getOrThrow(read.value).data).toEqual({ a: 2, b: [1, 2, 3] })
        // The next flush from that copy builds on the version we cached.
        const again = yield* server.countCommands(store.flush(change(Option.getOrThrow(read.value), { c: 3 })))
        expect(again.commands["hgetall"]).toBeUndefined()
        expect((yield* server.countCommands(store.retrieve(created.id))).total).toBe(0)
        expect(yield* promise(() => server.client().hget(keyOf(created.id), "$v"))).toBe("3")
      }))

    it.scoped("a session without a version (written by hand or an older release) is flushed, and not resurrected once gone", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const id = Session.makeId()
        yield* promise(() => server.client().hset(keyOf(id), "$c", String(Date.now()), "a", "1"))
        const read = Option.getOrThrow(yield* store.retrieve(id))
        const { commands } = yield* server.countCommands(store.flush(change(read, { a: 2 })))
        expect(commands).toEqual({ evalsha: 1, hexists: 1, hset: 1, hincrby: 1, pexpire: 1, hget: 1 })
        expect(yield* promise(() => server.client().hget(keyOf(id), "$v"))).toBe("1")
        expect(Option.getOrThrow(yield* store.retrieve(id)).data).toEqual({ a: 2 })
        // Gone, then flushed from a copy that predates the version: the write is undone.
        const old = Option.getOrThrow(yield* store.retrieve(id))
        yield* promise(() => server.client().del(keyOf(id)))
        yield* store.flush(change({ ...old, snapshot: { ...old.snapshot!, version: 0 } }, { a: 3 }))
        expect(yield* promise(() => server.client().exists(keyOf(id)))).toBe(0)
        expect(yield* store.retrieve(id)).toEqual(Option.none())
      }))

    it.scoped("a flush of a session that is gone leaves nothing behind: the script writes nothing", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const created = yield* store.create({ a: 1 })
        yield* promise(() => server.client().del(keyOf(created.id)))
        yield* store.flush(change(created, { a: 2 }))
        expect(yield* promise(() => server.client().exists(keyOf(created.id)))).toBe(0)
        expect(yield* store.retrieve(created.id)).toEqual(Option.none())
      }))

    it.scoped("a flush from an older copy than the one cached: the script answers with the merge, which is cached", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const created = yield* store.create({ a: 1 })
        yield* store.flush(change(created, { a: 2 }))
        const { commands } = yield* server.countCommands(store.flush(change(created, { b: 3 })))
        expect(commands).toEqual({ evalsha: 1, hexists: 1, hset: 1, hincrby: 1, pexpire: 1, hget: 1, hgetall: 1 })
        const read = yield* server.countCommands(store.retrieve(created.id))
        expect(read.total).toBe(0)
        expect(Option.getOrThrow(read.value).data).toEqual({ a: 2, b: 3 })
      }))

    it.scoped("touch of a cached session: one EVALSHA (HEXISTS, PEXPIRE, HGET), and the entry stays", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const created = yield* store.create({ a: 1 })
        const { commands } = yield* server.countCommands(store.touch(created.id))
        expect(commands).toEqual({ evalsha: 1, hexists: 1, pexpire: 1, hget: 1 })
        expect((yield* server.countCommands(store.retrieve(created.id))).total).toBe(0)
      }))

    it.scoped("a due lifetime refresh on a hit: one EVALSHA (HEXISTS, PEXPIRE, HGET), no re-read, and the entry stays", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const store = yield* build(server.settings({ expire: 2 }))
        const created = yield* store.create({ a: 1 })
        yield* RedisServer.eventually(
          Effect.flatMap(
            promise(() => raw.pttl(keyOf(created.id))),
            (pttl) => pttl < 1700 ? Effect.void : Effect.fail("not due")
          ),
          { intervalMs: 25 }
        )
        const { commands, value } = yield* server.countCommands(store.retrieve(created.id))
        expect(commands).toEqual({ evalsha: 1, hexists: 1, pexpire: 1, hget: 1 })
        expect(Option.getOrThrow(value).data).toEqual({ a: 1 })
        expect(yield* promise(() => raw.pttl(keyOf(created.id)))).toBeGreaterThan(1750)
        expect((yield* server.countCommands(store.retrieve(created.id))).total).toBe(0)
      }).pipe(guard(20_000, "due refresh")))

    it.scoped("a miss: HGETALL and PTTL in one pipeline; create: one EVALSHA (HSET, PEXPIRE, HGET); destroy: one DEL", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings())
        const created = yield* server.countCommands(store.create({ a: 1 }))
        expect(created.commands).toEqual({ evalsha: 1, hset: 1, pexpire: 1, hget: 1 })
        const other = yield* build(server.settings())
        expect((yield* server.countCommands(other.retrieve(created.value.id))).commands).toEqual({
          hgetall: 1,
          pttl: 1
        })
        expect((yield* server.countCommands(store.destroy(created.value.id))).commands).toEqual({ del: 1 })
      }))
  })

  describe("debug", () => {
    it.scoped("debug: true logs Redis interactions to stderr, without the password, session values or full ids", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.scoped({ password: "pa55-secret" })
        const lines: Array<string> = []
        const spy = vi.spyOn(console, "error").mockImplementation((...args: Array<unknown>) => {
          lines.push(args.map(String).join(" "))
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => spy.mockRestore()))
        const store = yield* build(server.settings({ debug: true, cache: { enabled: false } }))
        const created = yield* store.create({ token: "value-secret-123" })
        yield* store.retrieve(created.id)
        yield* store.flush(change(created, { token: "value-secret-456" }))
        yield* store.destroy(created.id)
        const log = lines.join("\n")
        expect(log).toMatch(/HGETALL|MULTI|PEXPIRE|DEL/)
        for (const secret of ["pa55-secret", "value-secret-123", "value-secret-456", created.id]) {
          expect(log).not.toContain(secret)
        }
      }))

    it.scoped("debug: false logs nothing about this store's sessions", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const lines: Array<string> = []
        const record = (...args: Array<unknown>) => void lines.push(args.map(String).join(" "))
        const error = vi.spyOn(console, "error").mockImplementation(record)
        const log = vi.spyOn(console, "log").mockImplementation(record)
        yield* Effect.addFinalizer(() => Effect.sync(() => (error.mockRestore(), log.mockRestore())))
        const store = yield* build(server.settings({ prefix: "nodebug:" }))
        const created = yield* store.create({ a: 1 })
        yield* store.retrieve(created.id)
        yield* store.destroy(created.id)
        // Other tests' stores may still log in the background; none of this store's keys may appear.
        expect(lines.filter((line) => line.includes("nodebug:"))).toEqual([])
      }))
  })

  describe("concurrency across instances", () => {
    it.scoped("two instances flush different fields of one session concurrently: both changes land", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const a = yield* build(server.settings())
        const b = yield* build(server.settings({ cache: { enabled: false } }))
        const created = yield* a.create({ user: "u" })
        for (let round = 0; round < 10; round++) {
          const [fromA, fromB] = yield* Effect.all([a.retrieve(created.id), b.retrieve(created.id)], {
            concurrency: "unbounded"
          })
          yield* Effect.all([
            a.flush(change(Option.getOrThrow(fromA), { [`a${round}`]: round })),
            b.flush(change(Option.getOrThrow(fromB), { [`b${round}`]: round }))
          ], { concurrency: "unbounded" })
        }
        const expected: Record<string, unknown> = { user: "u" }
        for (let round = 0; round < 10; round++) {
          expected[`a${round}`] = round
          expected[`b${round}`] = round
        }
        expect(yield* dataOf(created.id).pipe(Effect.provideService(Store, b))).toEqual(expected)
        yield* RedisServer.eventually(
          Effect.flatMap(
            dataOf(created.id).pipe(Effect.provideService(Store, a)),
            (data) => Object.keys(data ?? {}).length === 21 ? Effect.void : Effect.fail("stale")
          ),
          { timeoutMs: 10_000, intervalMs: 5 }
        )
      }).pipe(guard(30_000, "concurrent flushes")))

    it.scoped("destroy on one instance, stale flush on another: stays gone", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const a = yield* build(server.settings())
        const b = yield* build(server.settings())
        const created = yield* a.create({ a: 1 })
        const stale = yield* b.retrieve(created.id).pipe(Effect.map(Option.getOrThrow))
        yield* a.destroy(created.id)
        yield* b.flush(change(stale, { a: 2 }))
        expect(Option.isNone(yield* a.retrieve(created.id))).toBe(true)
        expect(Option.isNone(yield* b.retrieve(created.id))).toBe(true)
        expect(yield* promise(() => server.client().exists(keyOf(created.id)))).toBe(0)
      }))
  })

  describe("stored data Redis did not get from us", () => {
    it.scoped("a field that is not JSON gives SessionDecodeError naming the field", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        for (const cache of [false, true]) {
          const writer = yield* build(server.settings())
          const created = yield* writer.create({ ok: 1 })
          yield* promise(() => raw.hset(keyOf(created.id), "broken", "not json{"))
          // A fresh store: its first retrieve is a miss whatever the cache setting.
          const reader = yield* build(server.settings({ cache: { enabled: cache } }))
          const error = yield* Effect.flip(reader.retrieve(created.id))
          expect(error._tag).toBe("SessionDecodeError")
          if (error._tag === "SessionDecodeError") {
            // Only the six characters debug lines show: the id is a bearer token.
            expect(error.id).toBe(`${created.id.slice(0, 6)}…`)
            expect(error.field).toBe("broken")
          }
          // Still an error the second time: a broken session is not cached as anything.
          expect((yield* Effect.flip(reader.retrieve(created.id)))._tag).toBe("SessionDecodeError")
        }
      }))

    // SessionError.ts promises: "The session id and field name are kept; the value is not, because
    // session values may be secret." JSON.parse's SyntaxError quotes the value, and the message shows it.
    it.scoped("SessionDecodeError does not reveal the stored value in its message", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ cache: { enabled: false } }))
        const created = yield* store.create({ ok: 1 })
        yield* promise(() => server.client().hset(keyOf(created.id), "token", "secret-token-4711{"))
        const error = yield* Effect.flip(store.retrieve(created.id))
        expect(error._tag).toBe("SessionDecodeError")
        expect(error.message).not.toContain("secret-token-4711")
        expect(String(error)).not.toContain("secret-token-4711")
      }))

    it.scoped("a creation field that is not a timestamp gives SessionDecodeError", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ cache: { enabled: false } }))
        const id = Session.makeId()
        yield* promise(() => server.client().hset(keyOf(id), "$c", "yesterday", "a", "1"))
        const error = yield* Effect.flip(store.retrieve(id))
        expect(error._tag).toBe("SessionDecodeError")
      }))

    it.scoped("a hash without the creation field is absent", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ cache: { enabled: false } }))
        const id = Session.makeId()
        yield* promise(() => server.client().hset(keyOf(id), "a", "1"))
        expect(Option.isNone(yield* store.retrieve(id))).toBe(true)
      }))

    it.scoped("a key of the wrong type gives RedisCommandError", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const store = yield* build(server.settings({ cache: { enabled: false } }))
        const id = Session.makeId()
        yield* promise(() => server.client().set(keyOf(id), "a string"))
        const error = yield* Effect.flip(store.retrieve(id))
        expect(error._tag).toBe("RedisCommandError")
      }))
  })
})

// ---------------------------------------------------------------------------------------------

/** The code block that follows `marker` in README.md. */
const readmeBlock = (marker: string): string => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
  const after = readme.slice(readme.indexOf(marker))
  const match = /```ts\n([\s\S]*?)```/.exec(after)
  return match?.[1] ?? ""
}

describe("README example", () => {
  it("is printed in the README exactly as examples/promise.ts", () => {
    const source = readFileSync(new URL("../examples/promise.ts", import.meta.url), "utf8")
    expect(readmeBlock("### From plain Promise code")).toBe(source)
  })

  it("prints the quick start exactly as examples/quickstart.ts (type-checked with the project)", () => {
    const source = readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8")
    expect(readmeBlock("Compose the store into your app as a layer:")).toBe(source)
  })

  it("runs as a plain async function", async () => {
    const server = await RedisServer.start()
    try {
      expect(await addToCart({ server: server.server, expire: "15 minutes" })).toEqual({
        userId: 42,
        cart: ["apple"]
      })
    } finally {
      await server.stop()
    }
  })
})
