import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { Redis as IORedis } from "ioredis"
import type { SessionConfig } from "../SessionConfig.js"
import { RedisCommandError, SessionConfigError } from "../SessionError.js"
import type { SessionStore } from "../SessionStore.js"
import * as SessionCache from "./cache.js"
import * as ClusterTracking from "./clusterTracking.js"
import * as Enumeration from "./enumeration.js"
import * as Redis from "./redis.js"
import * as RedisParts from "./redisParts.js"
import * as RedisReads from "./redisReads.js"
import * as RedisUsers from "./redisUsers.js"
import * as RedisWrites from "./redisWrites.js"
import * as Slots from "./slots.js"
import * as Tracking from "./tracking.js"

/**
 * The Redis backend: one hash per session, delta writes, sliding expiry, and
 * a near-cache kept coherent by Redis client-side-caching invalidations. It
 * composes the reads (`redisReads.ts`), the writes (`redisWrites.ts`, whose
 * scripts are in `scripts.ts`) and the user index (`redisUsers.ts`).
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(config: SessionConfig) {
  const clustered = config.cluster !== undefined
  if (clustered && config.legacyPrefix !== undefined) {
    // The import script names the legacy key and the session key, which are on different slots.
    return yield* Effect.fail(
      new SessionConfigError({ field: "legacyPrefix", detail: "Expected no legacyPrefix with cluster" })
    )
  }
  const connection = yield* Redis.make(config)
  const cache = yield* SessionCache.make({
    capacity: config.cache.enabled ? config.cache.capacity : 0,
    ttl: Duration.toMillis(config.expire),
    maxStaleness: Duration.toMillis(config.cache.maxStaleness),
    // On a Cluster each slot is tracked through its master: losing one master drops only its slots.
    ...(clustered ? { partitionOf: (id: string) => Slots.slotOf(config.prefix + id) } : {})
  })
  if (config.cache.enabled && config.cache.capacity > 0) {
    yield* (clustered ? ClusterTracking.start(config, connection, cache) : Tracking.start(config, connection, cache))
  }
  const parts = yield* RedisParts.make(config, connection, cache)
  // Reads and writes need each other: a hit due for a refresh writes, a hand-built flush reads.
  const writes: RedisWrites.Writes = RedisWrites.make(parts, (id) => retrieve(id))
  const retrieve = RedisReads.make(parts, () => writes.refresh)
  const users = RedisUsers.make(parts)

  const store: SessionStore = {
    backend: "redis",
    expire: config.expire,
    absoluteExpire: config.absoluteExpire,
    sessionsOf: users.sessionsOf,
    destroyAll: users.destroyAll,
    create: writes.create,
    retrieve,
    flush: writes.flush,
    destroy: writes.destroy,
    regenerate: writes.regenerate,
    touch: writes.touch,
    ping: Effect.asVoid(connection.run("SessionStore.ping", "PING", "", (client) => client.ping())),
    cacheStats: cache.stats,
    redis: (f) =>
      Effect.suspend(() => {
        const client = connection.client
        return client instanceof IORedis
          ? connection.run("SessionStore.redis", "(user)", "", () => f(client))
          : Effect.fail(
            new RedisCommandError({
              method: "SessionStore.redis",
              command: "(user)",
              cause: new Error("store.redis lends a single-server client: it is not available on Redis Cluster")
            })
          )
      })
  }
  return Enumeration.register(store, Enumeration.redis(config, connection, parts.isOver))
})
