/**
 * Store level: hit, miss, one-field flush, create and destroy, for our store,
 * connect-redis (node-redis 5, with and without its client-side cache) and
 * raw ioredis commands, one operation at a time on the same Redis. Ours runs
 * inside one Effect program (what an Effect handler pays) and through one
 * `Effect.runPromise` per call (what a Promise caller pays); raw ioredis uses
 * the same autoPipelining setting as our store's client (on, the default).
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
  log("\n[1/8] Store level (one operation at a time)")
  const cached = await openStore(redis.server)
  const uncached = await openStore(redis.server, { cache: false })
  const theirs = await openTheirStore(redis.url)
  const theirsCsc = await openTheirStore(redis.url, { clientSideCache: true })
  // Our store's client pipelines automatically (SessionConfig.autoPipelining defaults to true): so does raw's.
  const raw = new Redis({ host: redis.host, port: redis.port, enableAutoPipelining: true })
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
  const data = makeSessionData()
  const d = seconds(2.4, 0.45)
  try {
    const session = await run(cached.store.create(data))
    const hit = cached.store.retrieve(session.id)
    if (Option.isNone(await run(hit))) throw new Error("the session we just created is not there")
    const rawKey = rawPrefix + sid()
    await raw.multi().hset(rawKey, rawFields(data)).pexpire(rawKey, TTL_MS).exec()
    const theirId = sid()
    await theirs.set(theirId, asExpressSession(data))
    // The first get fills node-redis's client-side cache; the timed ones are hits.
    if ((await theirsCsc.get(theirId)) === undefined) throw new Error("connect-redis lost the session we just set")
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
      },
      {
        key: "connectRedisCscGet",
        label: "connect-redis get, node-redis client-side cache",
        round: (s, t) => timeAsync(s, t, () => theirsCsc.get(theirId))
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
    let version = 0
    // From the copy the store serves now (a hit), as a request that read its session and changed one
    // field does: the write's reply confirms the version, and the cache takes our delta.
    const flushOne = Effect.flatMap(cached.store.retrieve(session.id), (found) => {
      const current = Option.getOrThrow(found)
      return cached.store.flush({ ...current, data: { ...current.data, counter: ++version } })
    })
    // From the copy made at creation, long outdated: the script answers with the whole hash, which
    // the cache decodes and takes (what a request that lost a race with another writer pays).
    const flushStale = Effect.suspend(() =>
      cached.store.flush({ ...session, data: { ...session.data, counter: ++version } })
    )
    results.flush = await compare("one-field flush", [
      {
        key: "ours",
        label: "ours, flush (one field), one Effect program",
        round: (s, t) => timeEffectBatched(s, t, 1, flushOne)
      },
      {
        key: "oursRunPromise",
        label: "ours, flush (one field), runPromise per call",
        round: (s, t) => timeAsync(s, t, () => run(flushOne))
      },
      {
        key: "oursStale",
        label: "ours, flush (one field) from an outdated copy",
        round: (s, t) => timeEffectBatched(s, t, 1, flushStale)
      },
      {
        key: "rawIoredisHsetPexpire",
        label: "raw ioredis MULTI HSET + PEXPIRE",
        round: (s, t) =>
          timeAsync(s, t, (i) => raw.multi().hset(rawKey, "counter", JSON.stringify(i)).pexpire(rawKey, TTL_MS).exec())
      },
      {
        key: "connectRedisSet",
        label: "connect-redis set (whole session)",
        round: (s, t) =>
          timeAsync(s, t, (i) => theirs.set(theirId, { ...theirSession, counter: i } as typeof theirSession))
      }
    ], d)

    const created: Array<string> = []
    const createdRunPromise: Array<string> = []
    const rawCreated: Array<string> = []
    const theirCreated: Array<string> = []
    const createInto = (pool: Array<string>) => Effect.map(cached.store.create(data), (x) => pool.push(x.id))
    results.create = await compare("create", [
      {
        key: "ours",
        label: "ours, create, one Effect program",
        round: (s, t) => timeEffectBatched(s, t, 1, createInto(created))
      },
      {
        key: "oursRunPromise",
        label: "ours, create, runPromise per call",
        round: (s, t) => timeAsync(s, t, () => run(createInto(createdRunPromise)))
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
    const createdQuota = Math.floor(created.length / 4)
    results.destroy = await compare("destroy", [
      {
        key: "ours",
        label: "ours, destroy, one Effect program",
        round: (s, t) =>
          timeEffectBatched(
            s,
            t,
            1,
            Effect.suspend(() => cached.store.destroy(created.pop()!)),
            Math.min(createdQuota, created.length)
          )
      },
      {
        key: "oursRunPromise",
        label: "ours, destroy, runPromise per call",
        round: drain(createdRunPromise, (id) => run(cached.store.destroy(id)))
      },
      { key: "rawIoredisDel", label: "raw ioredis DEL", round: drain(rawCreated, (key) => raw.del(key)) },
      {
        key: "connectRedisDestroy",
        label: "connect-redis destroy",
        round: drain(theirCreated, (id) => theirs.destroy(id))
      }
    ], d)
    return results as StoreResults
  } finally {
    await Promise.allSettled([cached.close(), uncached.close(), theirs.close(), theirsCsc.close(), raw.quit()])
  }
}
