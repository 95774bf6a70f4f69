/**
 * The near-cache on its own (no Redis): the rules that keep a racing reply
 * from filling it with an old value, its bound, and its lifetimes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as SessionCache from "../src/internal/cache.js"
import * as Session from "../src/internal/codec.js"

const ttl = 10_000
const make = (capacity = 10) =>
  Effect.tap(SessionCache.make({ capacity, ttl, maxStaleness: 100 }), (c) => c.reset("Tracking"))
const session = (id: string, n = 0): Session.Session => Either.getOrThrow(Session.encodeNew(id, { n }, 0)).session

/** Fills `id` as a read would: take a ticket, then complete it. */
const fill = (cache: SessionCache.SessionCache, id: string, now = 0, n = 0) =>
  Effect.flatMap(cache.begin(id), (ticket) => cache.complete(ticket, session(id, n), now))

const cached = (cache: SessionCache.SessionCache, id: string, now = 1) =>
  Effect.map(cache.lookup(id, now), (entry) => Option.fromNullable(entry?.session.data["n"]))

describe("SessionCache", () => {
  it.scoped("a completed ticket fills the cache, and a hit returns the same frozen value", () =>
    Effect.gen(function*() {
      const cache = yield* make()
      yield* fill(cache, "a")
      const entry = yield* cache.lookup("a", 1)
      expect(entry?.session.data).toEqual({ n: 0 })
      expect(Object.isFrozen(entry?.session.data)).toBe(true)
      expect(Option.getOrThrow(entry!.found)).toBe(entry!.session)
    }))

  it.scoped("an invalidation that arrives before the reply revokes the ticket", () =>
    Effect.gen(function*() {
      const cache = yield* make()
      const ticket = yield* cache.begin("a")
      yield* cache.invalidate(["a"])
      yield* cache.complete(ticket, session("a", 1), 0)
      expect(yield* cached(cache, "a")).toEqual(Option.none())
    }))

  it.scoped("a later operation on the same id revokes the earlier ticket; only the newest fills", () =>
    Effect.gen(function*() {
      const cache = yield* make()
      const older = yield* cache.begin("a")
      const newer = yield* cache.begin("a")
      yield* cache.complete(newer, session("a", 2), 0)
      yield* cache.complete(older, session("a", 1), 0)
      // The older reply, arriving last, did not install itself, and dropped what was there.
      expect(yield* cached(cache, "a")).toEqual(Option.none())
      yield* fill(cache, "a", 0, 3)
      expect(yield* cached(cache, "a")).toEqual(Option.some(3))
    }))

  it.scoped("losing tracking (reset) revokes every ticket, and nothing is cached while Off", () =>
    Effect.gen(function*() {
      const cache = yield* make()
      const ticket = yield* cache.begin("a")
      yield* cache.reset("Off")
      yield* cache.reset("Tracking")
      yield* cache.complete(ticket, session("a"), 0)
      expect(yield* cached(cache, "a")).toEqual(Option.none())

      yield* cache.reset("Off")
      yield* fill(cache, "b")
      expect(yield* cached(cache, "b")).toEqual(Option.none())
    }))

  it.scoped("FLUSHDB (a null invalidation) empties the cache", () =>
    Effect.gen(function*() {
      const cache = yield* make()
      yield* fill(cache, "a")
      yield* fill(cache, "b")
      yield* cache.invalidate(null)
      expect((yield* cache.stats).size).toBe(0)
      expect((yield* cache.stats).mode).toBe("Tracking")
    }))

  it.scoped("the least recently used entry goes first", () =>
    Effect.gen(function*() {
      const cache = yield* make(2)
      yield* fill(cache, "a")
      yield* fill(cache, "b")
      yield* cache.lookup("a", 1)
      yield* fill(cache, "c")
      expect(Option.isSome(yield* cached(cache, "a"))).toBe(true)
      expect(Option.isNone(yield* cached(cache, "b"))).toBe(true)
      expect(Option.isSome(yield* cached(cache, "c"))).toBe(true)
      expect((yield* cache.stats).size).toBe(2)
    }))

  it.scoped("an entry never outlives its session's lifetime, nor maxStaleness without tracking", () =>
    Effect.gen(function*() {
      const cache = yield* make()
      yield* fill(cache, "a", 0)
      expect(Option.isSome(yield* cached(cache, "a", ttl - 1))).toBe(true)
      expect(Option.isNone(yield* cached(cache, "a", ttl))).toBe(true)

      yield* cache.reset("Staleness")
      yield* fill(cache, "b", 0)
      expect(Option.isSome(yield* cached(cache, "b", 99))).toBe(true)
      expect(Option.isNone(yield* cached(cache, "b", 100))).toBe(true)
    }))

  it.scoped("counts hits, misses and invalidations", () =>
    Effect.gen(function*() {
      const cache = yield* make()
      yield* cache.lookup("a", 1)
      yield* fill(cache, "a")
      yield* cache.lookup("a", 1)
      yield* cache.invalidate(["a", "never-cached"])
      const stats = yield* cache.stats
      expect([stats.hits, stats.misses, stats.invalidations]).toEqual([1, 1, 1])
    }))
})
