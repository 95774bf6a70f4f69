/**
 * Store level: hit, miss, one-field flush, create and destroy, for our store,
 * connect-redis (node-redis 5) and raw ioredis commands, one operation at a
 * time on the same Redis.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import { compare, type Contender, timeEffectBatched } from "./compare.js"
import { openStore } from "./ourStore.js"
import type { BenchRedis } from "./redis.js"
import { makeSessionData } from "./sessionShape.js"
import { log, seconds, type Summary, timeAsync, timeSyncBatched } from "./stats.js"
import { asExpressSession, openTheirStore } from "./theirStore.js"

export type StoreResults = Record<"hit" | "miss" | "flush" | "create" | "destroy", Record<string, Summary>>

const TTL_MS = 900_000
const rawPrefix = "raw:"

/** The hash our data model stores: `$c` plus one JSON string per field. */
const rawFields = (data: Record<string, unknown>): Record<string, string> => {
  const fields: Record<string, string> = { $c: String(Date.now()) }
  for (const key in data) fields[key] = JSON.stringify(data[key])
  return fields
}

const rawDecode = (fields: Record<string, string>): Record<string, unknown> => {
  const data: Record<string, unknown> = {}
  for (const field in fields) if (field !== "$c") data[field] = JSON.parse(fields[field]!)
  return data
}

const sid = () => randomBytes(24).toString("base64url")

export const runStoreBench = async (redis: BenchRedis): Promise<StoreResults> => {
  log("\n[1/5] Store level (one operation at a time)")
  const cached = await openStore(redis.server)
  const uncached = await openStore(redis.server, { cache: false })
  const theirs = await openTheirStore(redis.url)
  const raw = new Redis({ host: redis.host, port: redis.port })
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
  const data = makeSessionData()
  const d = seconds(3, 0.45)
  try {
    const session = await run(cached.store.create(data))
    const hit = cached.store.retrieve(session.id)
    if (Option.isNone(await run(hit))) throw new Error("the session we just created is not there")
    const rawKey = rawPrefix + sid()
    await raw.multi().hset(rawKey, rawFields(data)).pexpire(rawKey, TTL_MS).exec()
    const theirId = sid()
    await theirs.set(theirId, asExpressSession(data))
    const map = new Map([[session.id, session]])

    const results: Partial<StoreResults> = {}
    results.hit = await compare("cache-hit retrieve", [
      {
        key: "mapGet",
        label: "Map.get (floor)",
        batch: 1000,
        round: async (s, t) => void timeSyncBatched(s, t, 1000, () => map.get(session.id))
      },
      {
        key: "oursEffectLoop",
        label: "ours, hit inside one Effect program",
        batch: 100,
        round: (s, t) => timeEffectBatched(s, t, 100, hit)
      },
      {
        key: "oursRunPromise",
        label: "ours, hit via Effect.runPromise per call",
        round: (s, t) => timeAsync(s, t, () => run(hit))
      },
      {
        key: "rawIoredisHgetall",
        label: "raw ioredis HGETALL",
        round: (s, t) => timeAsync(s, t, () => raw.hgetall(rawKey))
      },
      {
        key: "connectRedisGet",
        label: "connect-redis get",
        round: (s, t) => timeAsync(s, t, () => theirs.get(theirId))
      }
    ], d)

    const miss = uncached.store.retrieve(session.id)
    results.miss = await compare("miss retrieve (cache off)", [
      {
        key: "ours",
        label: "ours, inside one Effect program",
        round: (s, t) => timeEffectBatched(s, t, 1, miss)
      },
      {
        key: "oursRunPromise",
        label: "ours, Effect.runPromise per call",
        round: (s, t) => timeAsync(s, t, () => run(miss))
      },
      {
        key: "rawIoredisHgetallDecode",
        label: "raw ioredis HGETALL + JSON decode",
        round: (s, t) => timeAsync(s, t, () => raw.hgetall(rawKey).then(rawDecode))
      },
      {
        key: "connectRedisGet",
        label: "connect-redis get (GET + JSON.parse)",
        round: (s, t) => timeAsync(s, t, () => theirs.get(theirId))
      }
    ], d)

    const theirSession = asExpressSession(data)
    results.flush = await compare("one-field flush", [
      {
        key: "ours",
        label: "ours, flush (one changed field)",
        round: (s, t) =>
          timeAsync(s, t, (i) => run(cached.store.flush({ ...session, data: { ...session.data, counter: i + 1 } })))
      },
      {
        key: "rawIoredisHsetPexpire",
        label: "raw ioredis MULTI HSET + PEXPIRE",
        round: (s, t) =>
          timeAsync(s, t, (i) => raw.multi().hset(rawKey, "counter", String(i)).pexpire(rawKey, TTL_MS).exec())
      },
      {
        key: "connectRedisSet",
        label: "connect-redis set (whole session)",
        round: (s, t) =>
          timeAsync(s, t, (i) => theirs.set(theirId, { ...theirSession, counter: i } as typeof theirSession))
      }
    ], d)

    const created: Array<string> = []
    const rawCreated: Array<string> = []
    const theirCreated: Array<string> = []
    results.create = await compare("create", [
      {
        key: "ours",
        label: "ours, create",
        round: (s, t) => timeAsync(s, t, () => run(Effect.map(cached.store.create(data), (x) => created.push(x.id))))
      },
      {
        key: "rawIoredisHsetPexpire",
        label: "raw ioredis MULTI HSET (21 fields) + PEXPIRE",
        round: (s, t) =>
          timeAsync(s, t, () => {
            const key = rawPrefix + sid()
            rawCreated.push(key)
            return raw.multi().hset(key, rawFields(data)).pexpire(key, TTL_MS).exec()
          })
      },
      {
        key: "connectRedisSet",
        label: "connect-redis set (new id)",
        round: (s, t) =>
          timeAsync(s, t, () => {
            const id = sid()
            theirCreated.push(id)
            return theirs.set(id, theirSession)
          })
      }
    ], d)

    // Destroy what create made; the warm-up and each of the 3 rounds get a quarter of the pool.
    const drain = (pool: Array<string>, destroy: (id: string) => Promise<unknown>): Contender["round"] => {
      const quota = Math.floor(pool.length / 4)
      return (s, t) => timeAsync(s, t, () => destroy(pool.pop()!), Math.min(quota, pool.length))
    }
    results.destroy = await compare("destroy", [
      { key: "ours", label: "ours, destroy", round: drain(created, (id) => run(cached.store.destroy(id))) },
      { key: "rawIoredisDel", label: "raw ioredis DEL", round: drain(rawCreated, (key) => raw.del(key)) },
      {
        key: "connectRedisDestroy",
        label: "connect-redis destroy",
        round: drain(theirCreated, (id) => theirs.destroy(id))
      }
    ], d)
    return results as StoreResults
  } finally {
    await Promise.allSettled([cached.close(), uncached.close(), theirs.close(), raw.quit()])
  }
}
