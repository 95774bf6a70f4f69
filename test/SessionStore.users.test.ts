/**
 * Sessions bound to a user, as Redis holds them (the index's layout and
 * lifetime, revocation across instances), and the absolute lifetime on both
 * backends. The behaviour both backends share is in SessionStoreSpec.ts.
 */
import { describe, expect, layer } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import type { Redis } from "ioredis"
import { type SessionConfig, SessionStore } from "../src/index.js"
import * as Session from "../src/internal/codec.js"
import * as HoldingProxy from "./support/HoldingProxy.js"
import { RedisServer } from "./support/index.js"

const Store = SessionStore.SessionStore
const build = (settings: SessionConfig.Input) =>
  Effect.map(Layer.build(SessionStore.layer(settings)), Context.get(Store))
const promise = <A>(f: () => Promise<A>) => Effect.promise(f)
const guard = RedisServer.hangGuard
const indexOf = (user: string) => `session:user:{${user}}`

/** The part of a key that Redis Cluster hashes to pick its slot. */
const hashTag = (key: string): string => {
  const open = key.indexOf("{")
  const close = open === -1 ? -1 : key.indexOf("}", open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : key
}

const untilGone = (raw: Redis, key: string) =>
  RedisServer.eventually(
    Effect.flatMap(promise(() => raw.exists(key)), (n) => n === 0 ? Effect.void : Effect.fail(`${key} still exists`)),
    { timeoutMs: 15_000, intervalMs: 50 }
  )

describe("SessionStore users on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true })("index", (it) => {
    it.scoped("a sorted set per user, under a hash tag, that outlives its members; a session keeps prefix + id", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const store = yield* build(server.settings({ expire: 60 }))
        const user = `ann-${Session.makeId()}`
        const a = yield* store.create({ x: 1 }, { user })
        const b = yield* store.create({}, { user })
        expect(yield* promise(() => raw.type(`session:${a.id}`))).toBe("hash")
        expect(yield* promise(() => raw.hget(`session:${a.id}`, "$u"))).toBe(user)
        expect(yield* promise(() => raw.type(indexOf(user)))).toBe("zset")
        expect((yield* promise(() => raw.zrange(indexOf(user), "0", "-1"))).sort()).toEqual([a.id, b.id].sort())
        const sessionTtl = yield* promise(() => raw.pttl(`session:${a.id}`))
        const indexTtl = yield* promise(() => raw.pttl(indexOf(user)))
        expect(indexTtl).toBeGreaterThanOrEqual(sessionTtl)
        // The hash tag, as Cluster reads it (the first "{...}" with something inside): the user.
        expect(hashTag(indexOf(user))).toBe(user)
        expect(hashTag(`session:${a.id}`)).toBe(`session:${a.id}`)
      }))

    it.scoped(
      "the index disappears by itself once its sessions expired, and expired sessions leave sessionsOf",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.TestRedis
          const raw = server.client()
          const store = yield* build(server.settings({ expire: 1 }))
          const user = `exp-${Session.makeId()}`
          const created = yield* store.create({}, { user })
          expect((yield* store.sessionsOf(user)).length).toBe(1)
          yield* untilGone(raw, `session:${created.id}`)
          expect(yield* store.sessionsOf(user)).toEqual([])
          yield* untilGone(raw, indexOf(user))
        }).pipe(guard(90_000, "index expiry")),
      90_000
    )

    it.scoped("destroyAll drops the sessions from this instance's cache at once and from another's soon after", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const one = yield* build(server.settings({ expire: 60 }))
        const two = yield* build(server.settings({ expire: 60 }))
        const user = `rev-${Session.makeId()}`
        const sessions = yield* Effect.all([1, 2, 3].map((n) => one.create({ n }, { user })))
        for (const s of sessions) {
          expect(Option.isSome(yield* one.retrieve(s.id))).toBe(true)
          expect(Option.isSome(yield* two.retrieve(s.id))).toBe(true)
        }
        const hitsBefore = (yield* two.cacheStats).hits
        for (const s of sessions) yield* two.retrieve(s.id)
        expect((yield* two.cacheStats).hits).toBe(hitsBefore + 3)
        expect(yield* one.destroyAll(user)).toBe(3)
        for (const s of sessions) expect(Option.isNone(yield* one.retrieve(s.id))).toBe(true)
        yield* RedisServer.eventually(
          Effect.flatMap(
            Effect.forEach(sessions, (s) => two.retrieve(s.id)),
            (found) => found.every(Option.isNone) ? Effect.void : Effect.fail("still cached")
          ),
          { timeoutMs: 5_000, intervalMs: 5 }
        )
      }))

    it.scoped(
      "absoluteExpire: no refresh stretches the TTL past createdAt + absoluteExpire, and then it is gone",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.TestRedis
          const raw = server.client()
          const stores = [
            yield* build(server.settings({ expire: 600, absoluteExpire: 2 })),
            yield* build(server.settings({ expire: 600, absoluteExpire: 2, cache: { enabled: false } }))
          ]
          for (const store of stores) {
            expect(Duration.toMillis(store.absoluteExpire!)).toBe(2000)
            const user = `abs-${Session.makeId()}`
            const created = yield* store.create({ n: 0 }, { user })
            const key = `session:${created.id}`
            const cap = () => created.createdAt! + 2000 - Date.now()
            expect(yield* promise(() => raw.pttl(key))).toBeLessThanOrEqual(2000)
            // Every way of refreshing, again and again, while it lasts.
            let n = 0
            yield* RedisServer.eventually(
              Effect.gen(function*() {
                n++
                yield* store.touch(created.id)
                yield* store.flush({ ...created, data: { n } })
                const found = yield* store.retrieve(created.id)
                const pttl = yield* promise(() => raw.pttl(key))
                if (pttl > 0) expect(pttl).toBeLessThanOrEqual(Math.max(0, cap()) + 50)
                return Option.isNone(found) ? Effect.void : Effect.fail("still alive")
              }).pipe(Effect.flatten),
              { timeoutMs: 10_000, intervalMs: 100 }
            )
            expect(Date.now()).toBeGreaterThanOrEqual(created.createdAt! + 2000 - 50)
            expect(yield* store.sessionsOf(user)).toEqual([])
            yield* untilGone(raw, key)
          }
        }).pipe(guard(60_000, "absolute expiry")),
      60_000
    )
  })
})

/** The live sessions bound to `user`, read from Redis itself: every hash with a creation field and that binding. */
const liveOf = (raw: Redis, user: string) =>
  promise(async () => {
    const live: Array<string> = []
    let cursor = "0"
    do {
      const [next, keys] = await raw.scan(cursor, "MATCH", "session:*", "COUNT", 1000)
      cursor = next
      for (const key of keys) {
        if (key.startsWith("session:user:")) continue
        const [created, bound] = await raw.hmget(key, "$c", "$u")
        if (created !== null && bound === user) live.push(key.slice("session:".length))
      }
    } while (cursor !== "0")
    return live
  })

// "Sign out everywhere" on one instance while a request on another regenerates or logs in: the
// regenerate used to recreate the revoked session under a new id, with its data and binding (40 of
// 40 trials). The move is atomic now, on one server and on a Cluster (issue 19, point 1).
describe("SessionStore users: regenerate against destroyAll on another instance", () => {
  layer(RedisServer.layer(), { excludeTestServices: true })("revocation wins", (it) => {
    it.scoped("read on B, revoked on A, then B's regenerate or login finds it gone and creates nothing", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const a = yield* build(server.settings({ expire: 60 }))
        const b = yield* build(server.settings({ expire: 60 }))
        for (const login of [false, true]) {
          const user = `revoked-${Session.makeId()}`
          const created = yield* a.create({ secret: 1 }, { user })
          const read = Option.getOrThrow(yield* b.retrieve(created.id))
          expect(yield* a.destroyAll(user)).toBe(1)
          const moved = yield* (login ? b.regenerate(read, { user }) : b.regenerate(read))
          expect(Option.isNone(moved)).toBe(true)
          expect(yield* liveOf(raw, user)).toEqual([])
          expect(yield* a.sessionsOf(user)).toEqual([])
        }
      }))

    it.scoped("destroyAll that listed before the move and deletes after it: its next round ends the new id", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const proxy = yield* HoldingProxy.make(server.port)
        const a = yield* build({ server: proxy.server, expire: 60 })
        const b = yield* build(server.settings({ expire: 60 }))
        const user = `listed-${Session.makeId()}`
        const created = yield* a.create({ secret: 1 }, { user })
        const read = Option.getOrThrow(yield* b.retrieve(created.id))
        // A lists the index, then its deletions are held.
        proxy.holdNext("if f[2] ~= ARGV[1] then return 0 end")
        const revoking = yield* Effect.fork(a.destroyAll(user))
        yield* proxy.held
        // Meanwhile B moves the session: the old id is still there, so the move happens.
        const moved = Option.getOrThrow(yield* b.regenerate(read))
        yield* proxy.release
        expect(yield* Fiber.join(revoking)).toBe(1)
        expect(yield* liveOf(raw, user)).toEqual([])
        expect(Option.isNone(yield* b.retrieve(moved.id))).toBe(true)
      }))

    it.scoped("a move held between its two steps while destroyAll runs whole: the move does not happen", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.TestRedis
        const raw = server.client()
        const proxy = yield* HoldingProxy.make(server.port)
        const a = yield* build(server.settings({ expire: 60 }))
        const b = yield* build({ server: proxy.server, expire: 60 })
        for (const login of [false, true]) {
          const user = `held-${Session.makeId()}`
          const created = yield* a.create({ secret: 1 }, { user })
          const read = Option.getOrThrow(yield* b.retrieve(created.id))
          // B's new session exists (and is listed); its deletion of the old one is held.
          proxy.holdNext("ARGV[1] ~= 'login'")
          const moving = yield* Effect.fork(login ? b.regenerate(read, { user }) : b.regenerate(read))
          yield* proxy.held
          expect(yield* a.destroyAll(user)).toBe(2)
          yield* proxy.release
          expect(Option.isNone(yield* Fiber.join(moving))).toBe(true)
          expect(yield* liveOf(raw, user)).toEqual([])
        }
      }))

    it.scoped(
      "100 races of regenerate or login on B against destroyAll on A: no revoked session comes back",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.TestRedis
          const raw = server.client()
          const a = yield* build(server.settings({ expire: 60 }))
          const b = yield* build(server.settings({ expire: 60 }))
          const pause = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))
          for (let trial = 0; trial < 100; trial++) {
            const user = `race-${trial}-${Session.makeId()}`
            const created = yield* a.create({ n: trial }, { user })
            const read = Option.getOrThrow(yield* b.retrieve(created.id))
            yield* Effect.all([
              Effect.zipRight(pause(trial % 3), trial % 2 === 0 ? b.regenerate(read) : b.regenerate(read, { user })),
              Effect.zipRight(pause((trial >> 1) % 3), a.destroyAll(user))
            ], { concurrency: "unbounded" })
            expect(yield* liveOf(raw, user), `trial ${trial}`).toEqual([])
          }
        }).pipe(guard(120_000, "races")),
      120_000
    )
  })
})

/** Effect's clock, `offsetMs` off: an app instance whose system clock is wrong. */
const skewedClock = (offsetMs: number): Clock.Clock => {
  const base = Clock.make()
  const millis = () => base.unsafeCurrentTimeMillis() + offsetMs
  const nanos = () => base.unsafeCurrentTimeNanos() + BigInt(offsetMs) * 1_000_000n
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: millis,
    currentTimeMillis: Effect.sync(millis),
    unsafeCurrentTimeNanos: nanos,
    currentTimeNanos: Effect.sync(nanos),
    sleep: (duration) => base.sleep(duration)
  }
}

/** Every operation of `store` run on `clock`, as on an instance whose own clock it is. */
const onClock = (store: SessionStore.SessionStore, clock: Clock.Clock): SessionStore.SessionStore => {
  const at = Effect.withClock(clock)
  return {
    ...store,
    create: (data, options) => at(store.create(data, options)),
    retrieve: (id) => at(store.retrieve(id)),
    flush: (session) => at(store.flush(session)),
    destroy: (id) => at(store.destroy(id)),
    touch: (id) => at(store.touch(id)),
    sessionsOf: (user) => at(store.sessionsOf(user)),
    destroyAll: (user, options) => at(store.destroyAll(user, options))
  }
}

// An instance whose clock was more than `expire` + 60 s behind had its members pruned by the others
// (5 of 5 missing from sessionsOf, 5 of 5 survived destroyAll at −90 s); one ahead pruned the others'.
// The index now runs on Redis's clock (issue 19, point 10).
describe("SessionStore users: app instances whose clocks disagree", () => {
  layer(RedisServer.layer(), { excludeTestServices: true })("clock skew", (it) => {
    for (const skewSeconds of [-90, 90]) {
      it.scoped(`an instance ${skewSeconds} s off: every instance lists and revokes every session`, () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.TestRedis
          const settings = server.settings({ expire: 10 })
          const clock = skewedClock(skewSeconds * 1000)
          const honest = yield* build(settings)
          const skewed = onClock(yield* Effect.withClock(build(settings), clock), clock)
          const nowOf = (store: SessionStore.SessionStore) =>
            store === skewed ? clock.unsafeCurrentTimeMillis() : Date.now()
          for (const [maker, other] of [[skewed, honest], [honest, skewed]] as const) {
            const user = `skew-${Session.makeId()}`
            const made: Array<string> = []
            for (let i = 0; i < 5; i++) made.push((yield* maker.create({ i }, { user })).id)
            // Both list them, each a few times (every listing prunes), after a write by each.
            yield* other.create({}, { user: `${user}-other` })
            for (const lister of [other, maker, other]) {
              expect((yield* lister.sessionsOf(user)).map((s) => s.id).sort()).toEqual([...made].sort())
            }
            const [info] = yield* other.sessionsOf(user)
            // Times are the lister's own: lastActiveAt is never in its future, nor before the creation.
            expect(info!.lastActiveAt).toBeLessThanOrEqual(nowOf(other))
            expect(info!.lastActiveAt).toBeGreaterThan(nowOf(other) - 5_000)
            expect(yield* other.destroyAll(user)).toBe(5)
            for (const id of made) expect(Option.isNone(yield* maker.retrieve(id))).toBe(true)
          }
        }))
    }
  })
})

// TestClock drives the memory backend: the same absolute lifetime, exactly.
layer(SessionStore.layerMemory({ expire: "10 seconds", absoluteExpire: "25 seconds" }))(
  "SessionStore memory backend: absoluteExpire (TestClock)",
  (it) => {
    it.effect("a session used every 5 s still ends 25 s after its creation; sessionsOf caps expiresAt", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1 }, { user: "mem" })
        for (let t = 5; t < 25; t += 5) {
          yield* TestClock.adjust("5 seconds")
          expect(Option.isSome(yield* store.retrieve(created.id)), `at ${t} s`).toBe(true)
        }
        const [info] = yield* store.sessionsOf("mem")
        expect(info!.expiresAt).toBe(created.createdAt! + 25_000)
        expect(info!.lastActiveAt).toBe(created.createdAt! + 20_000)
        yield* TestClock.adjust("5 seconds")
        expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
        expect(yield* store.sessionsOf("mem")).toEqual([])
      }))
  }
)
