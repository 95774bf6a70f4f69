import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { SessionConfig } from "../SessionConfig.js"
import { RedisCommandError, RedisConnectionError } from "../SessionError.js"
import type * as SessionCache from "./cache.js"
import * as Redis from "./redis.js"

const channel = "__redis__:invalidate"

/**
 * Keeps the near-cache coherent with Redis server-assisted client-side
 * caching. ioredis 6 drops RESP3 invalidation pushes, so tracking is
 * redirected to a second connection that speaks RESP2 and subscribes to
 * `__redis__:invalidate`. BCAST mode with NOLOOP announces every change under
 * our prefix made by anyone else; default mode would forget keys after our
 * own writes and stay silent about later foreign ones.
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
  if (!config.cache.tracking) {
    yield* cache.reset("Staleness")
    return
  }
  const subscriber = yield* Redis.make(config, {
    name: "effect-session-redis:invalidations",
    overrides: { protocol: 2, autoResubscribe: false }
  })
  const prefixLength = config.prefix.length

  subscriber.client.on("messageBuffer", (from: Buffer, message: unknown) => {
    if (from.toString() !== channel) return
    // An array of keys, or null after FLUSHDB/FLUSHALL: everything is gone.
    const ids = message === null
      ? null
      : (Array.isArray(message) ? message : [message]).map((key) => String(key).slice(prefixLength))
    Effect.runSync(cache.invalidate(ids))
  })

  // The subscriber's CLIENT ID and its server's run id, known while it stays connected (a subscribed
  // connection can't ask again).
  let subscriberId: string | undefined = undefined
  let subscriberServer: string | undefined = undefined
  // Bumped whenever either connection closes: tracking set up on an earlier generation is gone, and an
  // `enable` that started before the close must not switch the cache back on.
  let generation = 0
  let warned = false
  const lock = yield* Effect.makeSemaphore(1)

  const enable = Effect.gen(function*() {
    const started = generation
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
      (client) => client.client("TRACKING", "ON", "REDIRECT", subscriberId!, "BCAST", "PREFIX", config.prefix, "NOLOOP")
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
    yield* cache.reset("Tracking")
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
    Effect.runSync(cache.reset("Off"))
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
