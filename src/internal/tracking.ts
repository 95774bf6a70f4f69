import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { SessionConfig } from "../SessionConfig.js"
import { RedisCommandError, RedisConnectionError } from "../SessionError.js"
import type * as SessionCache from "./cache.js"
import * as Redis from "./redis.js"
import * as TrackingTable from "./trackingTable.js"

const channel = "__redis__:invalidate"
const channelBytes = Buffer.from(channel)

/**
 * How the cache is kept coherent: per-key tracking (Redis tells an instance
 * about the keys it read, only), broadcasting (every change under the prefix
 * to every instance), or not at all (bounded staleness).
 *
 * @internal
 */
export type Mode = "keys" | "broadcast" | "off"

/**
 * The tracking mode the settings ask for.
 *
 * @internal
 */
export const modeOf = (config: SessionConfig): Mode =>
  config.cache.tracking === false ? "off" : config.cache.tracking === "broadcast" ? "broadcast" : "keys"

/**
 * The arguments of `CLIENT TRACKING ON` for `mode`, redirected to `subscriberId`.
 *
 * @internal
 */
export const trackingArguments = (config: SessionConfig, subscriberId: string): ReadonlyArray<string> =>
  modeOf(config) === "broadcast"
    ? ["TRACKING", "ON", "REDIRECT", subscriberId, "BCAST", "PREFIX", config.prefix, "NOLOOP"]
    : ["TRACKING", "ON", "REDIRECT", subscriberId, "NOLOOP"]

/**
 * The subscriber's `messageBuffer` listener. It runs for every message, and
 * with broadcasting for every write anyone makes, so it runs no Effect and
 * allocates nothing but the ids it parses: a key this instance does not hold
 * costs a map lookup.
 *
 * @internal
 */
export const listener = (prefix: string, cache: SessionCache.SessionCache) => {
  const prefixLength = Buffer.byteLength(prefix)
  const drop = (key: unknown) => {
    // Keys we track outside the prefix (a user index, a legacy key) name no cached session.
    if (Buffer.isBuffer(key)) cache.unsafeInvalidate(key.toString("utf8", prefixLength))
    else cache.unsafeInvalidate(String(key).slice(prefix.length))
  }
  return (from: Buffer, message: unknown): void => {
    if (!channelBytes.equals(from)) return
    // An array of keys, or null after FLUSHDB/FLUSHALL: everything is gone.
    if (message === null) cache.unsafeInvalidateAll()
    else if (Array.isArray(message)) { for (const key of message) drop(key) }
    else drop(message)
  }
}

/**
 * Keeps the near-cache coherent with Redis server-assisted client-side
 * caching. ioredis 6 drops RESP3 invalidation pushes, so tracking is
 * redirected to a second connection that speaks RESP2 and subscribes to
 * `__redis__:invalidate`. Per-key (default) mode with NOLOOP tells each
 * instance about changes, by anyone else, to the keys it read: Redis forgets
 * a key once it has announced it, or once we write it ourselves, so every
 * write of ours ends with a read of the key (see `scripts.ts`), and the fleet
 * pays nothing for the sessions an instance never read. Broadcasting
 * (`cache.tracking: "broadcast"`) announces every change under the prefix
 * to every instance instead.
 *
 * Tracking is lost whenever either connection drops, so the cache is emptied
 * and switched off on every `close`, and tracking is re-established on every
 * `ready` (CLIENT ID, then SUBSCRIBE, then CLIENT TRACKING) before the cache
 * is switched back on. Where CLIENT TRACKING is refused (disabled, renamed,
 * a proxy), the cache falls back to a bounded staleness.
 *
 * @internal
 */
export const start = Effect.fnUntraced(function*(
  config: SessionConfig,
  data: Redis.Connection,
  cache: SessionCache.SessionCache
) {
  if (modeOf(config) === "off") {
    yield* cache.reset("Staleness")
    return
  }
  const subscriber = yield* Redis.make(config, {
    name: "effect-session-redis:invalidations",
    overrides: { protocol: 2, autoResubscribe: false }
  })
  subscriber.client.on("messageBuffer", listener(config.prefix, cache))

  // The subscriber's CLIENT ID and its server's run id, known while it stays connected (a subscribed
  // connection can't ask again).
  let subscriberId: string | undefined = undefined
  let subscriberServer: string | undefined = undefined
  // Bumped whenever either connection closes: tracking set up on an earlier generation is gone, and an
  // `enable` that started before the close must not switch the cache back on.
  let generation = 0
  let warned = false
  // Tracking is on as the connections are now (not refused, not lost).
  let tracked = false
  // Per-key tracking with a (nearly) full table: entries are served for a bounded staleness only.
  let tableFull = false
  const lock = yield* Effect.makeSemaphore(1)
  const trackedMode = () => tableFull ? "Staleness" as const : "Tracking" as const

  const enable = Effect.gen(function*() {
    const started = generation
    tracked = false
    yield* cache.reset("Off")
    if (subscriberId === undefined) {
      const [id, info] = yield* subscriber.run(
        "tracking",
        "CLIENT ID",
        "",
        (client) => Promise.all([client.client("ID"), client.info("server")])
      )
      yield* subscriber.run("tracking", "SUBSCRIBE", channel, (client) => client.subscribe(channel))
      subscriberId = String(id)
      subscriberServer = runIdOf(info)
    }
    // REDIRECT reaches a client id on the same server only, and ids are small integers that repeat
    // across servers: behind Sentinel the two connections may have resolved different masters in a
    // failover. Only when both are on the same server is the cache tracked.
    const dataServer = runIdOf(yield* data.run("tracking", "INFO", "", (client) => client.info("server")))
    if (dataServer === undefined || dataServer !== subscriberServer) {
      // Reconnecting the subscriber makes it ask the sentinels again; its `ready` retries.
      if ("stream" in subscriber.client) subscriber.client.stream?.destroy()
      return yield* Effect.fail(
        new RedisConnectionError({
          method: "tracking",
          reason: "Closed",
          cause: new Error("the invalidation subscriber is on another server than the data connection")
        })
      )
    }
    yield* data.run("tracking", "CLIENT TRACKING", "", (client) => client.client("TRACKING", "OFF"))
    yield* data.run(
      "tracking",
      "CLIENT TRACKING",
      config.prefix,
      (client) => client.call("CLIENT", ...trackingArguments(config, subscriberId!))
    ).pipe(
      // The subscriber went away between its SUBSCRIBE and here (a CLIENT KILL, say): not a refusal
      // of tracking, only a stale id. Its close and ready start over; until then the cache stays Off.
      Effect.catchIf(
        (error) => error instanceof RedisCommandError && /redirect to does not exist/i.test(error.message),
        (error) => {
          subscriberId = undefined
          subscriberServer = undefined
          return Effect.fail(new RedisConnectionError({ method: "tracking", reason: "Closed", cause: error }))
        }
      )
    )
    // Either connection closed meanwhile: what we set up may be gone; their `ready` starts over.
    if (generation !== started) return
    tracked = true
    yield* cache.reset(trackedMode())
    yield* data.debug("tracking on")
  }).pipe(
    Effect.catchIf((error) => error instanceof RedisCommandError, (error) =>
      Effect.gen(function*() {
        yield* cache.reset("Staleness")
        if (!warned) {
          warned = true
          yield* Effect.logWarning(
            `effect-session-redis: CLIENT TRACKING is unavailable (${error.message}); ` +
              `the near-cache serves entries for at most the configured cache.maxStaleness`
          )
        }
      })),
    lock.withPermits(1)
  )

  // Building the layer waits for tracking, so the very first read is already cacheable.
  yield* Effect.retry(enable, Schedule.intersect(Schedule.exponential("50 millis"), Schedule.recurs(5)))

  const onClose = () => {
    generation++
    tracked = false
    Effect.runSync(cache.reset("Off"))
  }

  // Per key, Redis may forget our keys silently once its table is full (see trackingTable.ts).
  const checkTable = Effect.gen(function*() {
    const table = yield* TrackingTable.read(data)
    if (table === undefined) return
    const full = tableFull ? !TrackingTable.hasRoom(table) : TrackingTable.isFull(table)
    if (full === tableFull) return
    tableFull = full
    if (full) yield* Effect.logWarning(TrackingTable.warning(table))
    // Entering: what we hold may have missed an invalidation. Leaving: keys read from now on are tracked.
    if (tracked) yield* cache.reset(trackedMode())
  }).pipe(lock.withPermits(1))
  if (modeOf(config) === "keys") {
    yield* checkTable
    // A timer, not a fiber: nothing of the store's stays alive between checks, and it never holds
    // the process open.
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const timer = setInterval(() => Effect.runFork(checkTable), TrackingTable.checkMillis)
        timer.unref()
        return timer
      }),
      (timer) => Effect.sync(() => clearInterval(timer))
    )
  }
  data.client.on("close", onClose)
  subscriber.client.on("close", () => {
    subscriberId = undefined
    subscriberServer = undefined
    onClose()
  })
  const onReady = () => {
    // A connection error here means the other connection is still down: its own `ready` will retry.
    Effect.runFork(
      Effect.ignore(Effect.retry(enable, Schedule.intersect(Schedule.exponential("50 millis"), Schedule.recurs(5))))
    )
  }
  data.client.on("ready", onReady)
  subscriber.client.on("ready", onReady)
})

const runIdOf = (info: string): string | undefined => /^run_id:(\w+)/m.exec(info)?.[1]
