/**
 * The store against a redis-server that dies, hangs or comes back: every
 * caller gets a typed error within a bound, and service resumes without
 * rebuilding the layer.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { SessionStoreError } from "../src/index.js"
import { type SessionConfig, SessionStore } from "../src/index.js"
import * as Session from "../src/internal/codec.js"
import { change } from "./SessionStoreSpec.js"
import { RedisServer } from "./support/index.js"

const build = (settings: SessionConfig.Input) =>
  Effect.map(Layer.build(SessionStore.layer(settings)), Context.get(SessionStore.SessionStore))

const guard = RedisServer.hangGuard
const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

// Short bounds keep the suite fast; they are what a failing call waits at most.
const fast = { connectTimeout: 1000, commandTimeout: 500 } as const

const expectConnectionError = (error: SessionStoreError | SessionConfig.SessionConfigError) => {
  expect(error._tag).toBe("RedisConnectionError")
}

/** Polls `effect` until it succeeds: the store recovers by itself. */
const untilSucceeds = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  RedisServer.eventually(effect, { timeoutMs: 20_000, intervalMs: 25 })

/** Polls until the store has noticed that Redis is gone. */
const untilFails = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  RedisServer.eventually(Effect.flip(effect), { timeoutMs: 20_000, intervalMs: 10 })

describe("SessionStore faults (real redis-server, SIGKILL/SIGSTOP)", () => {
  it.scopedLive("SIGKILL: the next operation fails with RedisConnectionError without hanging, for every operation", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings({ ...fast, cache: { enabled: false } }))
      const created = yield* store.create({ a: 1 })
      yield* promise(() => server.kill())
      const operations = [
        store.retrieve(created.id),
        store.create({ b: 1 }),
        store.flush(change(created, { a: 2 })),
        store.touch(created.id),
        store.destroy(created.id),
        store.ping
      ]
      for (const operation of operations) {
        expectConnectionError(yield* Effect.flip(operation))
      }
    }).pipe(guard(30_000, "operations against a killed server")))

  it.scopedLive("SIGKILL with the cache on: a cached session is not served once the connection is lost", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings(fast))
      const created = yield* store.create({ a: 1 })
      yield* store.retrieve(created.id)
      yield* promise(() => server.kill())
      // Once the store has seen the connection drop, it can no longer know whether the entry is current.
      yield* untilFails(store.ping)
      expectConnectionError(yield* Effect.flip(store.retrieve(created.id)))
    }).pipe(guard(30_000, "cached read against a killed server")))

  it.scopedLive("SIGKILL in the middle of a stream of operations: the stream ends with a typed error", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings(fast))
      let done = 0
      const worker = Effect.gen(function*() {
        const created = yield* store.create({ n: 0 })
        let current = created
        for (let i = 0;; i++) {
          yield* store.flush(change(current, { n: i }))
          current = Option.getOrThrow(yield* store.retrieve(created.id))
          done++
        }
      })
      const fibers = yield* Effect.all(Array.from({ length: 4 }, () => Effect.fork(worker)))
      yield* RedisServer.eventually(Effect.suspend(() => done >= 40 ? Effect.void : Effect.fail("warming up")))
      yield* promise(() => server.kill())
      for (const fiber of fibers) {
        const exit = yield* Fiber.await(fiber)
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit)) {
          // A typed failure, not a defect or an interruption.
          const failure = Cause.failureOption(exit.cause)
          expect(Option.isSome(failure)).toBe(true)
          expect(Option.getOrThrow(failure)._tag).toBe("RedisConnectionError")
        }
      }
    }).pipe(guard(30_000, "a stream of operations interrupted by SIGKILL")))

  // With a 10 s command timeout, a call that fails before a 1 s timer did not wait for the timeout,
  // nor for ioredis to give up on its offline queue (every second reconnect attempt: about 2 s once
  // the backoff reaches its 1 s cap). It was refused because the store knew Redis was down.
  // No wall time is measured.
  const patient = { connectTimeout: 1000, commandTimeout: 10_000 } as const
  const failsBeforeTimeout = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.flip(effect).pipe(
      Effect.timeoutFail({ duration: "1 second", onTimeout: () => new Error("waited for the command timeout") }),
      Effect.orDie
    )

  it.scopedLive("while Redis is known to be down, every call fails at once with RedisConnectionError", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings(patient))
      const created = yield* store.create({ a: 1 })
      yield* store.retrieve(created.id)
      yield* promise(() => server.kill())
      yield* untilFails(store.ping)
      for (let round = 0; round < 3; round++) {
        const operations = [
          store.retrieve(created.id),
          store.create({ b: 1 }),
          store.flush(change(created, { a: 2 })),
          store.touch(created.id),
          store.destroy(created.id),
          store.ping
        ]
        for (const operation of operations) {
          expectConnectionError(yield* failsBeforeTimeout(operation))
        }
        // 64 clients at once: none waits either.
        const errors = yield* Effect.all(
          Array.from({ length: 64 }, () => failsBeforeTimeout(store.retrieve(created.id))),
          { concurrency: "unbounded" }
        )
        errors.forEach(expectConnectionError)
      }
      // The cached session was not served either: without the invalidation connection, the cache is off.
      expect(yield* store.cacheStats).toMatchObject({ mode: "Off" })
      // Only now does the server come back.
      yield* promise(() => server.restart())
      const after = yield* untilSucceeds(store.create({ back: true }))
      expect(Option.getOrThrow(yield* store.retrieve(after.id)).data).toEqual({ back: true })
    }).pipe(guard(60_000, "fail fast while Redis is down")))

  it.scopedLive("a hung server (SIGSTOP): after the first timeout, calls fail at once until it answers again", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(
        server.settings({ connectTimeout: 1000, commandTimeout: 4000, cache: { enabled: false } })
      )
      const created = yield* store.create({ a: 1 })
      server.freeze()
      const thawed = Effect.sync(() => server.thaw())
      yield* Effect.gen(function*() {
        // The first call can only learn of the hang by timing out: its socket stays open.
        const first = yield* Effect.flip(store.create({ b: 1 }))
        expect(first._tag === "RedisConnectionError" && first.reason).toBe("Timeout")
        // From then on the store knows: nothing waits for the timeout again while the server is hung.
        for (let i = 0; i < 5; i++) {
          const error = yield* Effect.flip(store.retrieve(created.id)).pipe(
            Effect.timeoutFail({
              duration: "1000 millis",
              onTimeout: () => new Error("waited for the command timeout")
            }),
            Effect.orDie
          )
          expectConnectionError(error)
        }
      }).pipe(Effect.ensuring(thawed))
      const found = yield* untilSucceeds(store.retrieve(created.id))
      expect(Option.getOrThrow(found).data).toEqual({ a: 1 })
    }).pipe(guard(40_000, "fail fast against a hung server")))

  it.scopedLive("many concurrent calls while Redis is down all fail within the bound", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings({ ...fast, cache: { enabled: false } }))
      const created = yield* store.create({ a: 1 })
      yield* promise(() => server.kill())
      const results = yield* Effect.all(
        Array.from({ length: 100 }, (_, i) =>
          Effect.flip(i % 2 === 0 ? Effect.asVoid(store.retrieve(created.id)) : Effect.asVoid(store.create({ i })))),
        { concurrency: "unbounded" }
      )
      results.forEach(expectConnectionError)
    }).pipe(guard(30_000, "concurrent calls against a killed server")))

  it.scopedLive("restart on the same port: operations succeed again without rebuilding the layer", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings(fast))
      const before = yield* store.create({ a: 1 })
      const stale = Option.getOrThrow(yield* store.retrieve(before.id))
      yield* promise(() => server.kill())
      expectConnectionError(yield* Effect.flip(store.create({})))
      yield* promise(() => server.restart())
      const after = yield* untilSucceeds(store.create({ back: true }))
      expect(Option.getOrThrow(yield* store.retrieve(after.id)).data).toEqual({ back: true })
      // The new process has no data (no persistence): the old session is gone, from the cache too,
      // and its stale copy does not bring it back.
      expect(Option.isNone(yield* store.retrieve(before.id))).toBe(true)
      yield* store.flush(change(stale, { a: 2 }))
      expect(Option.isNone(yield* store.retrieve(before.id))).toBe(true)
      expect(yield* promise(() => server.client().exists(`session:${before.id}`))).toBe(0)
    }).pipe(guard(40_000, "recovery after restart")))

  it.scopedLive("once the store's connection is back (CLIENT LIST shows it), the very next call succeeds", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings(fast))
      yield* store.create({})
      yield* promise(() => server.kill())
      expectConnectionError(yield* Effect.flip(store.create({})))
      yield* promise(() => server.restart())
      const raw = server.client()
      // Wait, without calling the store, until ioredis has reconnected on its own.
      yield* RedisServer.eventually(
        Effect.flatMap(
          promise(() => raw.client("LIST") as Promise<string>),
          (list) => /name=effect-session-redis( |$)/m.test(list) ? Effect.void : Effect.fail("not reconnected")
        ),
        { timeoutMs: 20_000, intervalMs: 20 }
      )
      const created = yield* store.create({ first: true })
      expect(Option.getOrThrow(yield* store.retrieve(created.id)).data).toEqual({ first: true })
    }).pipe(guard(40_000, "first call after reconnect")))

  it.scopedLive("after a restart the near-cache is coherent again: foreign writes invalidate it, hits are local", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings(fast))
      yield* promise(() => server.kill())
      yield* promise(() => server.restart())
      const created = yield* untilSucceeds(store.create({ n: 0 }))
      // Tracking comes back asynchronously after reconnecting; once it is on, a repeated read is a hit.
      yield* untilSucceeds(
        Effect.gen(function*() {
          yield* store.retrieve(created.id)
          const { total } = yield* server.countCommands(store.retrieve(created.id))
          if (total !== 0) return yield* Effect.fail("not cached yet")
        })
      )
      const raw = server.client()
      yield* promise(() => raw.hset(`session:${created.id}`, "n", "1"))
      yield* untilSucceeds(
        Effect.flatMap(
          store.retrieve(created.id),
          (s) => Option.getOrThrow(s).data.n === 1 ? Effect.void : Effect.fail("stale")
        )
      )
    }).pipe(guard(40_000, "coherence after restart")))

  it.scopedLive("restart of a unix socket server: the store reconnects", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped({ unixSocket: true, password: "pw" })
      const store = yield* build(server.settings(fast))
      yield* store.create({})
      yield* promise(() => server.kill())
      expectConnectionError(yield* Effect.flip(store.create({})))
      yield* promise(() => server.restart())
      yield* untilSucceeds(store.create({}))
    }).pipe(guard(40_000, "unix socket recovery")))

  it.scopedLive("a hung server (SIGSTOP): calls fail with RedisConnectionError Timeout, and succeed once it resumes", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings({ ...fast, cache: { enabled: false } }))
      const created = yield* store.create({ a: 1 })
      server.freeze()
      const error = yield* Effect.flip(store.retrieve(created.id)).pipe(
        Effect.ensuring(Effect.sync(() => server.thaw()))
      )
      expect(error._tag).toBe("RedisConnectionError")
      expect(error._tag === "RedisConnectionError" && error.reason).toBe("Timeout")
      const found = yield* untilSucceeds(store.retrieve(created.id))
      expect(Option.getOrThrow(found).data).toEqual({ a: 1 })
    }).pipe(guard(30_000, "calls against a hung server")))

  it.scopedLive("a write that timed out against a hung server is never sent again after the reconnect", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings({ ...fast, cache: { enabled: false } }))
      const created = yield* store.create({ n: 0 })
      const read = Option.getOrThrow(yield* store.retrieve(created.id))
      server.freeze()
      // The MULTI reaches the frozen server's socket; the caller is told it failed.
      const error = yield* Effect.flip(store.flush({ ...read, data: { n: 1 } })).pipe(
        Effect.ensuring(Effect.sync(() => server.thaw()))
      )
      expect(error._tag).toBe("RedisConnectionError")
      yield* untilSucceeds(store.ping)
      // What the server had received runs once, when it resumes. Had the client sent the
      // unanswered MULTI again on its new connection, a later write could be overwritten by it:
      // the version (1 at creation) would then have been bumped twice.
      const raw = server.client()
      yield* RedisServer.eventually(
        Effect.flatMap(
          promise(() => raw.hget(`session:${created.id}`, "$v")),
          (v) => v === "2" ? Effect.void : Effect.fail(`version ${v}`)
        ),
        { timeoutMs: 5_000, intervalMs: 20 }
      )
      const again = yield* store.retrieve(created.id)
      expect(Option.getOrThrow(again).data).toEqual({ n: 1 })
      expect(yield* promise(() => raw.hget(`session:${created.id}`, "$v"))).toBe("2")
    }).pipe(guard(30_000, "no resend of a timed-out write")))

  it.scopedLive("a command dropped with a killed connection fails as Closed, and the new connection is not taken for a hung server nor held back", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(
        server.settings({ connectTimeout: 1000, commandTimeout: 1500, cache: { enabled: false } })
      )
      const raw = server.client()
      const clients = promise(() => raw.client("LIST") as Promise<string>)
      const dataConnection = Effect.map(clients, (list) => /^id=(\d+) .* name=effect-session-redis /m.exec(list)?.[1])
      // A command whose reply never comes: ioredis drops it with the connection and never settles it.
      // The store must fail it as Closed, and not take it later for a sign of a hung new connection.
      const blocked = yield* Effect.fork(Effect.flip(store.redis((client) => client.blpop("nobody-pushes-here", 0))))
      yield* RedisServer.eventually(
        Effect.flatMap(clients, (list) => /cmd=blpop/.test(list) ? Effect.void : Effect.fail("BLPOP not sent yet")),
        { timeoutMs: 1000, intervalMs: 5 }
      )
      const first = yield* dataConnection
      yield* promise(() => raw.client("KILL", "ID", first!))
      const second = yield* RedisServer.eventually(
        Effect.flatMap(
          dataConnection,
          (id) => id !== undefined && id !== first ? Effect.succeed(id) : Effect.fail("old")
        ),
        { timeoutMs: 10_000, intervalMs: 5 }
      )
      // Settled at the close, before the reconnect (100 ms later): not left for a timer to find.
      expect(Option.isSome(yield* Fiber.poll(blocked))).toBe(true)
      yield* untilSucceeds(store.ping)
      const error = yield* Fiber.join(blocked)
      expect(error._tag === "RedisConnectionError" && error.reason).toBe("Closed")
      // Still the same connection, and it works: the late timeout did not make the store drop it.
      yield* store.ping
      expect(yield* dataConnection).toBe(second)
    }).pipe(guard(30_000, "a dropped command")))

  it.scopedLive("building the layer against a hung server fails with RedisConnectionError within connectTimeout", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      server.freeze()
      const error = yield* Effect.flip(build(server.settings({ connectTimeout: 500, commandTimeout: 500 }))).pipe(
        Effect.ensuring(Effect.sync(() => server.thaw()))
      )
      expect(error._tag).toBe("RedisConnectionError")
    }).pipe(guard(30_000, "layer build against a hung server")))

  it.scopedLive("closing the layer while Redis is down does not hang", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      yield* Effect.scoped(
        Effect.gen(function*() {
          const store = yield* build(server.settings(fast))
          yield* store.create({})
          yield* promise(() => server.kill())
        })
      )
    }).pipe(guard(30_000, "layer release while Redis is down")))

  // A ticket (the near-cache's permit to install a reply) that its operation never completes must still
  // be given back: interrupted reads and refused creates used to leave one each, for good (issue 19, point 8).
  it.scopedLive("interrupted reads and failed creates leave no near-cache ticket behind", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      const store = yield* build(server.settings({ commandTimeout: 20_000 }))
      const created = yield* store.create({ a: 1 })
      expect((yield* store.cacheStats).pending).toBe(0)

      // Reads sent to a hung server (misses: unknown ids, and a known one not cached here), interrupted.
      const other = yield* build(server.settings({ commandTimeout: 20_000 }))
      server.freeze()
      const reads = yield* Effect.forEach(
        [...Array.from({ length: 20 }, () => Session.makeId()), created.id],
        (id) => Effect.fork(other.retrieve(id))
      )
      yield* RedisServer.eventually(
        Effect.flatMap(other.cacheStats, (stats) => stats.pending === 21 ? Effect.void : Effect.fail(stats.pending))
      )
      yield* Fiber.interruptAll(reads)
      server.thaw()
      expect((yield* other.cacheStats).pending).toBe(0)

      // Creates refused by Redis (OOM), with and without a user.
      yield* promise(() => raw.config("SET", "maxmemory", "1"))
      for (const user of [undefined, "ann"]) {
        for (let i = 0; i < 10; i++) {
          const error = yield* Effect.flip(store.create({ big: "x".repeat(100) }, { user }))
          expect(error._tag).toBe("RedisCommandError")
        }
      }
      expect((yield* store.cacheStats).pending).toBe(0)
      yield* promise(() => raw.config("SET", "maxmemory", "0"))
    }).pipe(guard(60_000, "tickets")))
})
