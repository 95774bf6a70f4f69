/**
 * The near-cache across instances sharing one Redis (issue: coherent
 * near-cache). Every test runs on real redis-server processes; waits poll for
 * a condition under a loose hang guard, and nothing asserts on time.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type { Redis } from "ioredis"
import { execFile } from "node:child_process"
import { SessionCache, type SessionStore } from "../src/index.js"
import { RedisServer } from "./support/index.js"
import { instance } from "./support/Stores.js"

type Store = SessionStore.SessionStore

/** A store with its own connections: one simulated app instance. */
const guard = RedisServer.hangGuard
const nextTurn = Effect.async<void>((resume) => void setImmediate(() => resume(Effect.void)))
const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** The value of `field` that `store` serves now (None when the session is gone). */
const read = (store: Store, id: string, field: string) =>
  Effect.map(store.retrieve(id), Option.map((s) => s.data[field]))

/** Polls until `store` serves `expected` for `field`. */
const untilSeen = (store: Store, id: string, field: string, expected: Option.Option<unknown>) =>
  RedisServer.eventually(
    Effect.flatMap(read(store, id, field), (seen) =>
      Option.getEquivalence((a: unknown, b: unknown) =>
          a === b
        )(seen, expected)
        ? Effect.void
        : Effect.fail(`still serving ${JSON.stringify(seen)}`)),
    { timeoutMs: 15_000, intervalMs: 5 }
  )

const setField = (store: Store, id: string, field: string, value: unknown) =>
  Effect.flatMap(store.retrieve(id), (found) => {
    const session = Option.getOrThrow(found)
    return store.flush({ ...session, data: { ...session.data, [field]: value } })
  })

/** The data connection's and the subscriber's client ids, found by name in CLIENT LIST. */
const clientIds = (raw: Redis) =>
  promise(async () => {
    const list = await raw.client("LIST") as string
    const ids = (name: string) =>
      list.split("\n").filter((line) => line.includes(` name=${name} `)).map((line) => /id=(\d+)/.exec(line)![1]!)
    return { data: ids("effect-session-redis"), subscriber: ids("effect-session-redis:invalidations") }
  })

describe("near-cache coherence across instances", () => {
  it.scopedLive("a change or a destroy made by another instance is seen, and hits stay local", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const a = yield* instance(server.settings())
      const b = yield* instance(server.settings())
      const created = yield* a.create({ colour: "red" })
      yield* a.retrieve(created.id)
      expect((yield* a.cacheStats).size).toBe(1)

      yield* setField(b, created.id, "colour", "blue")
      yield* untilSeen(a, created.id, "colour", Option.some("blue"))
      expect((yield* a.cacheStats).invalidations).toBeGreaterThanOrEqual(1)

      // Refilled from Redis once; from then on hits send nothing.
      yield* a.retrieve(created.id)
      const counted = yield* server.countCommands(Effect.repeatN(a.retrieve(created.id), 19))
      expect(counted.total).toBe(0)

      yield* b.destroy(created.id)
      yield* untilSeen(a, created.id, "colour", Option.none())
    }).pipe(guard(30_000, "cross-instance change")))

  it.scopedLive("a change made by another process is seen", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const a = yield* instance(server.settings())
      const created = yield* a.create({ step: 0 })
      yield* a.retrieve(created.id)
      const remote = (...args: Array<string>) =>
        promise(() =>
          new Promise<string>((resolve, reject) =>
            execFile(process.execPath, ["--import", "tsx", "test/support/remoteWriter.ts", ...args], {
              env: { ...process.env, REDIS_SESSION_SERVER: server.server }
            }, (error, stdout, stderr) => error ? reject(new Error(stderr)) : resolve(stdout))
          )
        )
      expect(yield* remote("set", created.id, "step", "1")).toBe("ok\n")
      yield* untilSeen(a, created.id, "step", Option.some(1))
      expect(yield* remote("destroy", created.id)).toBe("ok\n")
      yield* untilSeen(a, created.id, "step", Option.none())
    }).pipe(guard(60_000, "cross-process change")))

  it.scopedLive("FLUSHDB from a raw client empties the cache", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const a = yield* instance(server.settings())
      const created = yield* a.create({ n: 1 })
      yield* a.retrieve(created.id)
      const before = yield* a.cacheStats
      yield* promise(() => server.client().flushdb())
      yield* untilSeen(a, created.id, "n", Option.none())
      const after = yield* a.cacheStats
      expect(after.clears).toBeGreaterThan(before.clears)
      expect(after.mode).toBe("Tracking")
    }).pipe(guard(30_000, "FLUSHDB")))

  it.scopedLive("a session that expires in Redis is invalidated", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const a = yield* instance(server.settings({ expire: 1 }))
      const created = yield* a.create({ n: 1 })
      yield* a.retrieve(created.id)
      // Redis announces the expiry itself: the entry is dropped by an invalidation, not by our own clock.
      yield* RedisServer.eventually(
        Effect.flatMap(a.cacheStats, (stats) =>
          stats.invalidations >= 1 ? Effect.void : Effect.fail("no invalidation yet")),
        { timeoutMs: 15_000, intervalMs: 20 }
      )
      expect(Option.isNone(yield* a.retrieve(created.id))).toBe(true)
    }).pipe(guard(30_000, "expiry invalidation")))

  for (const victim of ["subscriber", "data"] as const) {
    it.scopedLive(`after CLIENT KILL of the ${victim} connection, no stale value is served and tracking comes back`, () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.scoped()
        const raw = server.client()
        const a = yield* instance(server.settings())
        const b = yield* instance(server.settings())
        const created = yield* a.create({ v: 0 })
        yield* a.retrieve(created.id)
        const before = yield* clientIds(raw)
        // Both instances have their connections under the same names: kill A's by its id (the first).
        const [target] = yield* Effect.filter(
          before[victim],
          (id) => Effect.map(promise(() => raw.client("LIST", "ID", id) as Promise<string>), (line) => line.length > 0)
        )
        yield* promise(() => raw.client("KILL", "ID", target!))
        yield* setField(b, created.id, "v", 1)
        // From here on A may serve 0 only until it has served 1 once; never after.
        yield* untilSeen(a, created.id, "v", Option.some(1))
        for (let i = 0; i < 50; i++) expect(yield* read(a, created.id, "v")).toEqual(Option.some(1))

        // Tracking is back on both instances' data connections, redirected to a live subscriber, per key.
        yield* RedisServer.eventually(
          Effect.gen(function*() {
            const ids = yield* clientIds(raw)
            const lines = yield* Effect.forEach(
              ids.data,
              (id) => promise(() => raw.client("LIST", "ID", id) as Promise<string>)
            )
            // CLIENT LIST flags: t = tracking on, B = broadcast mode, R = redirect target gone.
            const tracking = lines.filter((line) =>
              /flags=[^ ]*t/.test(line) && !/flags=[^ ]*B/.test(line) && !/flags=[^ ]*R/.test(line)
            )
            if (tracking.length < 2) return yield* Effect.fail(`only ${tracking.length} tracking connections`)
            const stats = yield* a.cacheStats
            if (stats.mode !== "Tracking") return yield* Effect.fail(`mode ${stats.mode}`)
          }),
          { timeoutMs: 15_000, intervalMs: 20 }
        )
        // And invalidations flow again.
        yield* a.retrieve(created.id)
        yield* setField(b, created.id, "v", 2)
        yield* untilSeen(a, created.id, "v", Option.some(2))
      }).pipe(guard(45_000, `CLIENT KILL ${victim}`)))
  }

  it.scopedLive("a storm of CLIENT KILLs of the subscriber never leaves the cache believing tracking is refused", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      const a = yield* instance(server.settings())
      const b = yield* instance(server.settings())
      const created = yield* a.create({ v: 0 })
      // Kill the subscribers while they reconnect and re-enable tracking: some kills land between a
      // subscriber's SUBSCRIBE and the data connection's CLIENT TRACKING ... REDIRECT <its id>.
      for (let i = 0; i < 40; i++) {
        yield* promise(() => raw.call("CLIENT", "KILL", "TYPE", "pubsub"))
        yield* Effect.sleep(`${i % 5} millis`)
      }
      // The redirect target being gone is not a refusal of tracking: the cache comes back to Tracking
      // (never the Staleness fallback), and serves the other instance's write.
      yield* RedisServer.eventually(
        Effect.flatMap(
          a.cacheStats,
          (stats) => stats.mode === "Tracking" ? Effect.void : Effect.fail(`mode ${stats.mode}`)
        ),
        { timeoutMs: 15_000, intervalMs: 20 }
      )
      yield* a.retrieve(created.id)
      yield* setField(b, created.id, "v", 1)
      yield* untilSeen(a, created.id, "v", Option.some(1))
    }).pipe(guard(45_000, "CLIENT KILL storm")))

  it.scopedLive("stress: once B's last write is acknowledged and announced, A never serves an older version", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const a = yield* instance(server.settings())
      const b = yield* instance(server.settings())
      const ids = yield* Effect.forEach([1, 2, 3], () => Effect.map(b.create({ version: 0 }), (s) => s.id))
      const last = new Map(ids.map((id) => [id, 0]))

      // Readers check that each fiber's own sequence of reads never goes back in time.
      const reader = Effect.gen(function*() {
        const seen = new Map<string, number>()
        let reads = 0
        while (true) {
          const id = ids[yield* Random.nextIntBetween(0, ids.length)]!
          const version = Option.getOrThrow(yield* read(a, id, "version")) as number
          expect(version).toBeGreaterThanOrEqual(seen.get(id) ?? 0)
          seen.set(id, version)
          // Cache hits never leave the microtask queue, and Effect's scheduler falls back to
          // setTimeout(0), which Node keeps running within one timers phase: without a real turn of
          // the event loop now and then, no socket would ever be read. A server gets one per request.
          yield* ++reads % 16 === 0 ? nextTurn : Effect.yieldNow()
        }
      })
      const readers = yield* Effect.forkAll(Array.from({ length: 4 }, () => reader))
      for (let i = 1; i <= 300; i++) {
        const id = ids[i % ids.length]!
        yield* setField(b, id, "version", i)
        last.set(id, i)
      }
      // Each reader fails the test if it ever saw a version go backwards.
      const early = yield* Fiber.poll(readers)
      expect(Option.isNone(early)).toBe(true)
      yield* Fiber.interrupt(readers)

      for (const [id, version] of last) yield* untilSeen(a, id, "version", Option.some(version))
      yield* Effect.forEach(
        Array.from({ length: 8 }),
        () =>
          Effect.forEach(
            ids,
            (id) => Effect.map(read(a, id, "version"), (seen) => expect(seen).toEqual(Option.some(last.get(id))))
          ),
        {
          concurrency: "unbounded"
        }
      )
    }).pipe(guard(60_000, "stress")))
})

describe("near-cache without tracking", () => {
  it.scopedLive("where CLIENT TRACKING is refused, the cache falls back to bounded staleness", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      // A user that may do everything but CLIENT TRACKING, as behind some proxies and managed services.
      yield* promise(() =>
        raw.call("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@all", "-client|tracking")
      )
      const a = yield* instance(
        server.settings({ username: "app", password: "app-password", cache: { maxStaleness: 200 } })
      )
      const b = yield* instance(server.settings())
      expect((yield* a.cacheStats).mode).toBe("Staleness")
      const created = yield* a.create({ n: 1 })
      yield* a.retrieve(created.id)
      yield* setField(b, created.id, "n", 2)
      yield* untilSeen(a, created.id, "n", Option.some(2))
    }).pipe(guard(30_000, "fallback")))

  it.scopedLive("cache.tracking false serves entries for at most maxStaleness", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const a = yield* instance(server.settings({ cache: { tracking: false, maxStaleness: 100 } }))
      const b = yield* instance(server.settings())
      expect((yield* a.cacheStats).mode).toBe("Staleness")
      const created = yield* a.create({ n: 1 })
      yield* a.retrieve(created.id)
      yield* b.destroy(created.id)
      yield* untilSeen(a, created.id, "n", Option.none())
    }).pipe(guard(30_000, "tracking off")))

  it.scopedLive("cache disabled: every retrieve goes to Redis", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const a = yield* instance(server.settings({ cache: { enabled: false } }))
      const created = yield* a.create({ n: 1 })
      const counted = yield* server.countCommands(Effect.repeatN(a.retrieve(created.id), 4))
      expect(counted.commands["hgetall"]).toBe(5)
      expect((yield* a.cacheStats).mode).toBe("Off")
    }).pipe(guard(30_000, "cache disabled")))
})

describe("cache metrics", () => {
  it.scopedLive("hits, misses and invalidations are counted per store and as Effect metrics", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const a = yield* instance(server.settings())
      const b = yield* instance(server.settings())
      const hitsBefore = (yield* Metric.value(SessionCache.metrics.hits)).count
      const created = yield* a.create({ n: 1 })
      yield* Effect.repeatN(a.retrieve(created.id), 2)
      const stats = yield* a.cacheStats
      expect(stats.hits).toBe(3)
      expect((yield* Metric.value(SessionCache.metrics.hits)).count - hitsBefore).toBeGreaterThanOrEqual(3)
      yield* setField(b, created.id, "n", 2)
      yield* untilSeen(a, created.id, "n", Option.some(2))
      expect((yield* a.cacheStats).invalidations).toBe(1)
      expect((yield* a.cacheStats).misses).toBe(1)
    }).pipe(guard(30_000, "metrics")))
})
