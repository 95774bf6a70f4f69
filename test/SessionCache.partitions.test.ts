/**
 * The partitioned near-cache (Redis Cluster: one partition per slot, tracked
 * through its master): losing one partition's tracking drops only that
 * partition's entries and tickets, and an untracked partition is never filled,
 * while every other partition keeps serving hits.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as SessionCache from "../src/internal/cache.js"
import * as Session from "../src/internal/codec.js"

const session = (id: string, n = 0): Session.Session => Either.getOrThrow(Session.encodeNew(id, { n }, 0)).session
// Ids name their partition: "3:x" is in partition 3.
const partitionOf = (id: string) => Number(id.split(":")[0])
const all = Array.from({ length: SessionCache.partitions }, (_, i) => i)

const make = Effect.gen(function*() {
  const cache = yield* SessionCache.make({ capacity: 100, ttl: 10_000, maxStaleness: 100, partitionOf })
  yield* cache.reset("Tracking")
  yield* cache.resetPartitions(all, true)
  return cache
})

const fill = (cache: SessionCache.SessionCache, id: string, n = 0) =>
  Effect.flatMap(cache.begin(id), (ticket) => cache.complete(ticket, session(id, n), 0))

const cached = (cache: SessionCache.SessionCache, id: string) =>
  Effect.map(cache.lookup(id, 1), (entry) => Option.fromNullable(entry?.session.data["n"]))

describe("SessionCache partitions", () => {
  it.scoped("every partition starts untracked: nothing is cached until its tracking is on", () =>
    Effect.gen(function*() {
      const cache = yield* SessionCache.make({ capacity: 100, ttl: 10_000, maxStaleness: 100, partitionOf })
      yield* cache.reset("Tracking")
      yield* fill(cache, "1:a")
      expect(yield* cached(cache, "1:a")).toEqual(Option.none())
      expect((yield* cache.stats).mode).toBe("Off")
      yield* cache.resetPartitions([1], true)
      yield* fill(cache, "1:a")
      expect(yield* cached(cache, "1:a")).toEqual(Option.some(0))
    }))

  it.scoped("losing one partition drops its entries only; the others keep serving hits", () =>
    Effect.gen(function*() {
      const cache = yield* make
      yield* fill(cache, "1:a")
      yield* fill(cache, "2:b")
      yield* cache.resetPartitions([1], false)
      expect(yield* cached(cache, "1:a")).toEqual(Option.none())
      expect(yield* cached(cache, "2:b")).toEqual(Option.some(0))
      // While untracked, partition 1 is never filled.
      yield* fill(cache, "1:a", 1)
      expect(yield* cached(cache, "1:a")).toEqual(Option.none())
      expect((yield* cache.stats).mode).toBe("Off")
      yield* cache.resetPartitions([1], true)
      expect((yield* cache.stats).mode).toBe("Tracking")
    }))

  it.scoped("a ticket taken before its partition moved cannot fill it, even once tracked again", () =>
    Effect.gen(function*() {
      const cache = yield* make
      const stale = yield* cache.begin("1:a")
      const other = yield* cache.begin("2:b")
      // The slot moved to another master: dropped, then tracked there.
      yield* cache.resetPartitions([1], false)
      yield* cache.resetPartitions([1], true)
      yield* cache.complete(stale, session("1:a", 1), 0)
      yield* cache.complete(other, session("2:b", 2), 0)
      expect(yield* cached(cache, "1:a")).toEqual(Option.none())
      expect(yield* cached(cache, "2:b")).toEqual(Option.some(2))
      yield* fill(cache, "1:a", 3)
      expect(yield* cached(cache, "1:a")).toEqual(Option.some(3))
    }))
})
