/**
 * Redis's side of per-key tracking, on a private redis-server of its own (so
 * that `used_memory` moves with nothing but what is measured):
 * - the memory of Redis's tracking table per tracked session key (N = 10k,
 *   100k), against the same keys read untracked, and per additional client
 *   tracking the same keys (what each more instance caching a session costs);
 *   what is left of it once the clients have gone;
 * - what `tracking-table-max-keys` does when the instances track more keys
 *   than it allows: Redis evicts keys from the table and sends an
 *   invalidation for each, so caches lose entries nobody wrote.
 *
 * The tracking clients are what the store sets up (a RESP2 connection
 * subscribed to `__redis__:invalidate`, and a data connection with
 * `CLIENT TRACKING ON REDIRECT <id> NOLOOP`), driven by hand: a read of each
 * session hash (in our data model). Where the store accepts
 * `cache.tracking: "keys"`, one store instance also reads N sessions, as a
 * check that the store tracks what the emulation does.
 *
 * On its own: `npx tsx bench/trackingTable.ts` (BENCH_QUICK=1: 10k keys only).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import * as SessionConfig from "../src/SessionConfig.js"
import * as SessionStore from "../src/SessionStore.js"
import { type BenchRedis, startRedis } from "./redis.js"
import { makeSessionData } from "./sessionShape.js"
import { log, quick } from "./stats.js"

export interface TrackingTableSize {
  readonly keys: number
  /** `used_memory` growth per session hash written: the sessions themselves, for scale. */
  readonly sessionBytesPerKey: number
  /** Growth per key after a client without tracking read every key (should be about 0). */
  readonly untrackedReadBytesPerKey: number
  /** Growth per key once one client tracks every key: a key in the table with one client. */
  readonly trackedBytesPerKey: number
  /** Growth per key once a second client tracks the same keys: one more (key, client) item each. */
  readonly secondClientBytesPerKey: number
  /** What is still held per key once both clients have disconnected (Redis forgets them lazily). */
  readonly leftAfterDisconnectBytesPerKey: number
  /** INFO stats with one tracking client, with two, and after both disconnected. */
  readonly table: {
    readonly oneClient: { readonly keys: number; readonly items: number }
    readonly twoClients: { readonly keys: number; readonly items: number }
    readonly afterDisconnect: { readonly keys: number; readonly items: number }
  }
}

export interface TrackingTableResults {
  readonly sessionKeyBytes: number
  readonly sizes: ReadonlyArray<TrackingTableSize>
  /** One store instance with `cache.tracking: "keys"` reading sessions; null where the store has no such mode. */
  readonly store: {
    readonly keys: number
    readonly setting: string
    readonly tableKeys: number
    readonly tableItems: number
    readonly trackedBytesPerKey: number
  } | null
  readonly storeSkipped?: string
  /**
   * The same store instance against a table that is too small: it reads `tracked` sessions with
   * `tracking-table-max-keys` at `limit`, another client writes each once, and the store reads them
   * all again. `staleReads` counts the reads that still returned the old value.
   */
  readonly storeEviction: {
    readonly limit: number
    readonly tracked: number
    readonly invalidations: number
    readonly staleReads: number
    /** The cache's mode just before the second read (the store may stop trusting a full table). */
    readonly cacheMode: string
    /** From the end of the first read to the start of the second, against the store's `cache.maxStaleness`. */
    readonly msBetweenReads: number
    readonly maxStalenessMs: number
  } | null
  /** `tracking-table-max-keys` below what is tracked: with NOLOOP (as the store tracks) and, for contrast, without. */
  readonly maxKeys: ReadonlyArray<MaxKeysRun>
}

export interface MaxKeysRun {
  readonly noloop: boolean
  readonly limit: number
  /** Keys one client read (and so tracked), in pipelined batches. */
  readonly tracked: number
  /** Keys in the table once the reads were done. */
  readonly tableKeysAfterReads: number
  /** Distinct keys named in invalidation messages during the reads: the keys Redis evicted and announced. */
  readonly announcedWhileReading: number
  /** Distinct keys announced in all, after another client then wrote every key once. */
  readonly announcedInAll: number
  /**
   * Keys the client read whose later change it was never told about: a cache holding them would
   * serve them stale until it drops them for another reason.
   */
  readonly neverAnnounced: number
}

const prefix = "session:"
const batch = 1_000

const info = async (raw: Redis, section: string): Promise<Record<string, string>> => {
  const fields: Record<string, string> = {}
  for (const line of (await raw.info(section)).split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return fields
}

const usedMemory = async (raw: Redis) => Number((await info(raw, "memory"))["used_memory"])

const table = async (raw: Redis) => {
  const stats = await info(raw, "stats")
  return { keys: Number(stats["tracking_total_keys"]), items: Number(stats["tracking_total_items"]) }
}

/** A session id as the store makes them (32 random bytes, base64url): the key length matters here. */
const sessionId = () => randomBytes(32).toString("base64url")

// One script call writes a batch of sessions: the client's work for 100k HSETs of 22 fields
// would take longer than Redis's.
const populateScript =
  "for _, key in ipairs(KEYS) do redis.call('HSET', key, unpack(ARGV)) redis.call('PEXPIRE', key, 3600000) end"

/** Writes `count` session hashes in our data model (`$c`, `$v`, one JSON string per field). */
const populate = async (raw: Redis, count: number): Promise<ReadonlyArray<string>> => {
  const ids = Array.from({ length: count }, sessionId)
  const fields: Array<string> = ["$c", String(Date.now()), "$v", "1"]
  for (const [k, v] of Object.entries(makeSessionData())) fields.push(k, JSON.stringify(v))
  for (let start = 0; start < count; start += batch) {
    const keys = ids.slice(start, start + batch).map((id) => prefix + id)
    await raw.eval(populateScript, keys.length, ...keys, ...fields)
  }
  return ids
}

/**
 * Reads every key once, in pipelined batches. Redis tracks a key whichever command reads it, so
 * a short reply does: `HGET` of the version field. (The store check below reads with the store's
 * own HGETALL and PTTL, for the same figure.)
 */
const readAll = async (client: Redis, ids: ReadonlyArray<string>) => {
  for (let start = 0; start < ids.length; start += batch) {
    const pipeline = client.pipeline()
    for (const id of ids.slice(start, start + batch)) pipeline.hget(prefix + id, "$v")
    await pipeline.exec()
  }
}

interface Tracker {
  readonly data: Redis
  readonly subscriberId: string
  /** Distinct keys named in invalidation messages so far. */
  readonly announced: ReadonlySet<string>
  /** Resolves once every invalidation Redis sent before now has arrived. */
  readonly caughtUp: () => Promise<unknown>
  readonly close: () => Promise<unknown>
}

/**
 * What the store sets up for per-key tracking: a RESP2 subscriber, and a data connection whose
 * reads it tracks (with NOLOOP unless told otherwise). A second data connection can share the
 * subscriber (`redirectTo`).
 */
const tracker = async (
  redis: BenchRedis,
  options: { readonly redirectTo?: Tracker; readonly noloop?: boolean } = {}
): Promise<Tracker> => {
  const { noloop = true, redirectTo } = options
  if (redirectTo !== undefined) {
    const data = new Redis({ host: redis.host, port: redis.port })
    await data.client("TRACKING", "ON", "REDIRECT", redirectTo.subscriberId, ...(noloop ? ["NOLOOP"] : []))
    return { ...redirectTo, data, close: () => data.quit() }
  }
  const announced = new Set<string>()
  const subscriber = new Redis({ host: redis.host, port: redis.port, protocol: 2, autoResubscribe: false })
  const subscriberId = String(await subscriber.client("ID"))
  await subscriber.subscribe("__redis__:invalidate")
  subscriber.on("messageBuffer", (_channel: Buffer, message: unknown) => {
    if (Array.isArray(message)) { for (const key of message) announced.add(String(key)) }
    else if (message !== null) announced.add(String(message))
  })
  const data = new Redis({ host: redis.host, port: redis.port })
  await data.client("TRACKING", "ON", "REDIRECT", subscriberId, ...(noloop ? ["NOLOOP"] : []))
  return {
    data,
    subscriberId,
    announced,
    // A PING on the subscriber is answered after every message Redis queued for it before.
    caughtUp: () => subscriber.ping(),
    close: () => Promise.all([data.quit(), subscriber.quit()])
  }
}

const perKey = (bytes: number, keys: number) => Math.round(bytes / keys)

const measureSize = async (redis: BenchRedis, raw: Redis, keys: number): Promise<TrackingTableSize> => {
  await raw.flushall()
  const empty = await usedMemory(raw)
  const ids = await populate(raw, keys)
  const populated = await usedMemory(raw)
  await readAll(raw, ids)
  const readUntracked = await usedMemory(raw)
  const a = await tracker(redis)
  const b = await tracker(redis, { redirectTo: a })
  try {
    await readAll(a.data, ids)
    const trackedOnce = await usedMemory(raw)
    const oneClient = await table(raw)
    await readAll(b.data, ids)
    const trackedTwice = await usedMemory(raw)
    const twoClients = await table(raw)
    await Promise.all([b.close(), a.close()])
    // QUIT is answered before the connection is freed: wait until Redis has let both go.
    for (let i = 0; i < 200 && /flags=\S*t/.test(String(await raw.client("LIST"))); i++) {
      await new Promise((resume) => setTimeout(resume, 5))
    }
    const afterDisconnect = await table(raw)
    const left = await usedMemory(raw)
    return {
      keys,
      sessionBytesPerKey: perKey(populated - empty, keys),
      untrackedReadBytesPerKey: perKey(readUntracked - populated, keys),
      trackedBytesPerKey: perKey(trackedOnce - readUntracked, keys),
      secondClientBytesPerKey: perKey(trackedTwice - trackedOnce, keys),
      leftAfterDisconnectBytesPerKey: perKey(left - readUntracked, keys),
      table: { oneClient, twoClients, afterDisconnect }
    }
  } finally {
    await Promise.allSettled([a.close(), b.close()])
  }
}

/** One store instance with per-key tracking reads `keys` sessions: does it track what the emulation does? */
const measureStore = async (redis: BenchRedis, raw: Redis, keys: number) => {
  const decoded = storeSettings(redis, keys)
  if (Either.isLeft(decoded)) return Either.left(decoded.left)
  await raw.flushall()
  const ids = await populate(raw, keys)
  const before = await usedMemory(raw)
  const runtime = ManagedRuntime.make(Layer.scoped(SessionStore.SessionStore, SessionStore.make(decoded.right)))
  try {
    const store = await runtime.runPromise(SessionStore.SessionStore)
    const found = await runtime.runPromise(
      Effect.forEach(ids, (id) => store.retrieve(id), { concurrency: 64 })
    )
    const missing = found.filter(Option.isNone).length
    if (missing > 0) return Either.left(`the store found ${missing} of the ${keys} sessions missing`)
    const after = await usedMemory(raw)
    const t = await table(raw)
    return Either.right({
      keys,
      setting: JSON.stringify({ tracking: decoded.right.cache.tracking, capacity: decoded.right.cache.capacity }),
      tableKeys: t.keys,
      tableItems: t.items,
      trackedBytesPerKey: perKey(after - before, keys)
    })
  } catch (error) {
    return Either.left(`the store failed: ${String(error)}`)
  } finally {
    await runtime.dispose()
  }
}

const storeSettings = (redis: BenchRedis, capacity: number) => {
  const settings = { server: redis.server, expire: 3600, cache: { tracking: "keys", capacity } }
  return Either.mapLeft(
    Effect.runSync(Effect.either(SessionConfig.decode(settings))),
    (error) => `the store rejects {"tracking":"keys"}: ${error.message}`
  )
}

/** Writes `counter` = 1 in every session, through a client of its own: another instance's flush. */
const writeForeign = async (raw: Redis, ids: ReadonlyArray<string>) => {
  for (let start = 0; start < ids.length; start += batch) {
    const pipeline = raw.pipeline()
    for (const id of ids.slice(start, start + batch)) {
      pipeline.hset(prefix + id, "counter", "1").hincrby(prefix + id, "$v", 1)
    }
    await pipeline.exec()
  }
}

const measureStoreEviction = async (redis: BenchRedis, raw: Redis, limit: number, tracked: number) => {
  const settings = storeSettings(redis, tracked)
  if (Either.isLeft(settings)) return Either.left(settings.left)
  await raw.flushall()
  const ids = await populate(raw, tracked)
  const [, previous] = (await raw.config("GET", "tracking-table-max-keys")) as [string, string]
  await raw.config("SET", "tracking-table-max-keys", String(limit))
  const runtime = ManagedRuntime.make(Layer.scoped(SessionStore.SessionStore, SessionStore.make(settings.right)))
  try {
    const store = await runtime.runPromise(SessionStore.SessionStore)
    const readAllOf = Effect.forEach(ids, (id) => store.retrieve(id), { concurrency: 64 })
    await runtime.runPromise(readAllOf)
    const firstReadDone = performance.now()
    const before = await runtime.runPromise(store.cacheStats)
    await writeForeign(raw, ids)
    // The store's subscriber is its own: wait until its invalidation count has not moved for 100 ms.
    let invalidations = before.invalidations
    for (let still = 0, waited = 0; still < 5 && waited < 100; waited++) {
      await new Promise((resume) => setTimeout(resume, 20))
      const now = (await runtime.runPromise(store.cacheStats)).invalidations
      still = now === invalidations ? still + 1 : 0
      invalidations = now
    }
    const cacheMode = (await runtime.runPromise(store.cacheStats)).mode
    const msBetweenReads = performance.now() - firstReadDone
    const found = await runtime.runPromise(readAllOf)
    const staleReads = found.filter((s) => Option.isSome(s) && s.value.data["counter"] !== 1).length
    return Either.right({
      limit,
      tracked,
      invalidations: invalidations - before.invalidations,
      staleReads,
      cacheMode,
      msBetweenReads: Math.round(msBetweenReads),
      maxStalenessMs: Duration.toMillis(settings.right.cache.maxStaleness)
    })
  } catch (error) {
    return Either.left(`the store failed: ${String(error)}`)
  } finally {
    await runtime.dispose()
    await raw.config("SET", "tracking-table-max-keys", previous)
  }
}

/**
 * One client reads `tracked` keys with the table limited to `limit`; then another client writes
 * every key once. Which of the keys read was the reader ever told about?
 */
const measureMaxKeys = async (
  redis: BenchRedis,
  raw: Redis,
  limit: number,
  tracked: number,
  noloop: boolean
): Promise<MaxKeysRun> => {
  await raw.flushall()
  const ids = await populate(raw, tracked)
  const [, previous] = (await raw.config("GET", "tracking-table-max-keys")) as [string, string]
  await raw.config("SET", "tracking-table-max-keys", String(limit))
  const t = await tracker(redis, { noloop })
  try {
    await readAll(t.data, ids)
    await t.caughtUp()
    const announcedWhileReading = t.announced.size
    const tableKeysAfterReads = (await table(raw)).keys
    for (let start = 0; start < ids.length; start += batch) {
      const pipeline = raw.pipeline()
      for (const id of ids.slice(start, start + batch)) pipeline.hset(prefix + id, "counter", "1")
      await pipeline.exec()
    }
    await t.caughtUp()
    const announcedInAll = ids.filter((id) => t.announced.has(prefix + id)).length
    return {
      noloop,
      limit,
      tracked,
      tableKeysAfterReads,
      announcedWhileReading,
      announcedInAll,
      neverAnnounced: tracked - announcedInAll
    }
  } finally {
    await t.close()
    await raw.config("SET", "tracking-table-max-keys", previous)
  }
}

const kb = (bytes: number) => `${bytes} B`

export const trackingTableLines = (r: TrackingTableResults): ReadonlyArray<string> => [
  `    ${
    ["keys", "session hash", "read untracked", "tracked, 1 client", "+1 client", "left after disconnect", "table"]
      .map((h, i) => (i === 0 ? h.padStart(7) : h.padStart(i === 6 ? 0 : 14)))
      .join("  ")
  }`,
  ...r.sizes.map((s) =>
    `    ${
      [
        String(s.keys).padStart(7),
        kb(s.sessionBytesPerKey).padStart(14),
        kb(s.untrackedReadBytesPerKey).padStart(14),
        kb(s.trackedBytesPerKey).padStart(17),
        kb(s.secondClientBytesPerKey).padStart(14),
        kb(s.leftAfterDisconnectBytesPerKey).padStart(21),
        `${s.table.oneClient.keys} keys / ${s.table.twoClients.items} items; after disconnect ${s.table.afterDisconnect.keys} / ${s.table.afterDisconnect.items}`
      ].join("  ")
    }`
  ),
  r.store === null
    ? `    store check skipped: ${r.storeSkipped ?? "n/a"}`
    : `    store, cache ${r.store.setting}, ${r.store.keys} sessions read: table ${r.store.tableKeys} keys / ${r.store.tableItems} items, ${
      kb(r.store.trackedBytesPerKey)
    } per key`,
  ...(r.storeEviction === null ? [] : [
    `    store, tracking-table-max-keys ${r.storeEviction.limit}, ${r.storeEviction.tracked} sessions read, each written once by another client: ${r.storeEviction.invalidations} invalidations; cache mode ${r.storeEviction.cacheMode}; read again ${r.storeEviction.msBetweenReads} ms after the first read (maxStaleness ${r.storeEviction.maxStalenessMs} ms): ${r.storeEviction.staleReads} stale reads`
  ]),
  ...r.maxKeys.map((m) =>
    `    tracking-table-max-keys ${m.limit}, one client ${
      m.noloop ? "with" : "without"
    } NOLOOP reads ${m.tracked} keys: table ${m.tableKeysAfterReads} keys, ${m.announcedWhileReading} evicted keys announced; after another client wrote every key, ${m.neverAnnounced} keys were never announced`
  )
]

export const runTrackingTable = async (step = ""): Promise<TrackingTableResults> => {
  const sizes = quick ? [10_000] : [10_000, 100_000]
  log(
    `\n${step}Redis's tracking table (its own redis-server): memory per tracked session key for ${
      sizes.join(", ")
    } keys, and tracking-table-max-keys 1000 with 5000 tracked`
  )
  const redis = await startRedis()
  const raw = new Redis({ host: redis.host, port: redis.port })
  try {
    const measured: Array<TrackingTableSize> = []
    for (const keys of sizes) measured.push(await measureSize(redis, raw, keys))
    const store = await measureStore(redis, raw, sizes[0]!)
    const storeEviction = Either.isRight(store)
      ? await measureStoreEviction(redis, raw, 1_000, 5_000)
      : Either.left("as above")
    const maxKeys = [
      await measureMaxKeys(redis, raw, 1_000, 5_000, true),
      await measureMaxKeys(redis, raw, 1_000, 5_000, false)
    ]
    const results: TrackingTableResults = {
      sessionKeyBytes: Buffer.byteLength(prefix + sessionId()),
      sizes: measured,
      store: Either.getOrNull(store),
      ...(Either.isLeft(store) ? { storeSkipped: store.left } : {}),
      storeEviction: Either.getOrNull(storeEviction),
      maxKeys
    }
    for (const line of trackingTableLines(results)) log(line)
    return results
  } finally {
    await raw.quit().catch(() => undefined)
    await redis.stop()
  }
}

const standalone = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href

if (standalone) {
  const started = Date.now()
  runTrackingTable().then(
    () => {
      log(`\ntracking table workload took ${Math.round((Date.now() - started) / 1000)} s`)
      process.exit(0)
    },
    (error) => {
      process.stderr.write(
        `tracking table bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`
      )
      process.exit(1)
    }
  )
}
