import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { Redis as IORedis } from "ioredis"
import * as Redis from "../Redis.js"
import * as Session from "../Session.js"
import * as SessionCache from "../SessionCache.js"
import type { SessionConfig } from "../SessionConfig.js"
import type { Service } from "../SessionStore.js"
import * as Tracing from "./tracing.js"
import * as Tracking from "./tracking.js"

type ExecResult = Array<[error: Error | null, result: unknown]> | null

/**
 * The Redis backend: one hash per session, delta writes, sliding expiry, and
 * a near-cache kept coherent by Redis client-side-caching invalidations.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(config: SessionConfig) {
  const connection = yield* Redis.make(config)
  const { run } = connection
  const ttl = Duration.toMillis(config.expire)
  // Sliding expiry costs a PEXPIRE, and Redis announces every PEXPIRE to the other instances, which
  // then drop their copy. So the lifetime is refreshed only when a tenth of it has passed.
  const refreshEvery = Math.max(1, Math.floor(ttl / 10))
  const cache = yield* SessionCache.make({
    capacity: config.cache.enabled ? config.cache.capacity : 0,
    ttl,
    maxStaleness: Duration.toMillis(config.cache.maxStaleness)
  })
  if (config.cache.enabled && config.cache.capacity > 0) {
    yield* Tracking.start(config, connection, cache)
  }

  const keyOf = (id: string) => config.prefix + id
  // Captured once: the hit path reads the time without an effect of its own (TestClock still applies).
  const clock = yield* Effect.clock

  const exec = (method: string, key: string, build: (multi: ReturnType<IORedis["multi"]>) => void) =>
    Effect.flatMap(
      run(method, "MULTI", key, (client) => {
        const multi = client.multi()
        build(multi)
        return multi.exec() as Promise<ExecResult>
      }),
      (replies) => {
        const failed = replies?.find(([error]) => error !== null)?.[0]
        return replies === null || failed !== undefined
          ? Effect.fail(Redis.toError(method, "EXEC", failed ?? new Error("transaction aborted")))
          : Effect.succeed(replies.map(([, result]) => result))
      }
    )

  const decodeOrDrop = (id: string, fields: Record<string, string>, previous: Session.Snapshot | undefined) =>
    Either.match(Session.decode(id, fields, previous), {
      onLeft: (error) => Effect.zipRight(cache.remove(id), Effect.fail(error)),
      onRight: Effect.succeed
    })

  const create: Service["create"] = Effect.fnUntraced(function*(data = {}) {
    const id = Session.makeId()
    const key = keyOf(id)
    const now = yield* Clock.currentTimeMillis
    const { fields, session } = Session.encodeNew(id, data, now)
    const ticket = yield* cache.begin(id)
    yield* exec("SessionStore.create", key, (multi) => multi.hset(key, ...fields.flat()).pexpire(key, ttl))
    // A fresh random id: nobody else can have written it, so what we wrote is what Redis holds.
    yield* cache.complete(ticket, session, now)
    return session
  }, Tracing.span("SessionStore.create"))

  // Refreshes the lifetime and re-reads the hash in one transaction. Our own PEXPIRE may hide a
  // foreign write made in the same Redis event-loop cycle: BCAST tracking remembers only the last
  // writer of a key per cycle, and NOLOOP skips it. So what we cache afterwards must come from Redis.
  const refresh = Effect.fnUntraced(function*(method: string, id: string, previous: Session.Snapshot | undefined) {
    const key = keyOf(id)
    const ticket = yield* cache.begin(id)
    const [alive, fields] = yield* exec(method, key, (multi) => multi.pexpire(key, ttl).hgetall(key))
    const now = yield* Clock.currentTimeMillis
    const found = alive === 1
      ? yield* decodeOrDrop(id, fields as Record<string, string>, previous)
      : Option.none<Session.Session>()
    yield* cache.complete(ticket, Option.getOrUndefined(found), now)
    return found
  })

  // A miss reads the hash and its remaining lifetime in one round trip; from the lifetime we know
  // when it was last refreshed, so a read refreshes it only when due.
  const load = Effect.fnUntraced(function*(id: string) {
    const key = keyOf(id)
    const ticket = yield* cache.begin(id)
    const [fields, remaining] = yield* run(
      "SessionStore.retrieve",
      "HGETALL",
      key,
      (client) => Promise.all([client.hgetall(key), client.pttl(key)])
    )
    const now = yield* Clock.currentTimeMillis
    const found = yield* decodeOrDrop(id, fields, undefined)
    const refreshedAt = now - (ttl - remaining)
    if (Option.isSome(found) && now - refreshedAt >= refreshEvery) {
      return yield* refresh("SessionStore.retrieve", id, found.value.snapshot)
    }
    yield* cache.complete(ticket, Option.getOrUndefined(found), now, refreshedAt)
    return found
  })

  // Reads get no span at all: even when a tracer is installed, one span per cache hit would cost
  // more than the hit. Writes get spans when a tracer is installed (see Tracing.span).
  const retrieve: Service["retrieve"] = (id) =>
    Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(cache.lookup(id, now), (entry) =>
        entry === undefined
          ? load(id)
          : now - entry.refreshedAt < refreshEvery
          ? Effect.succeed(entry.found)
          : refresh("SessionStore.retrieve", id, entry.session.snapshot))
    })

  const destroy: Service["destroy"] = Effect.fnUntraced(function*(id) {
    yield* cache.remove(id)
    yield* run("SessionStore.destroy", "DEL", keyOf(id), (client) => client.del(keyOf(id)))
    // A read that started before the DEL may have been answered after it: drop whatever it installed.
    yield* cache.remove(id)
  }, Tracing.span("SessionStore.destroy"))

  const touch: Service["touch"] = Effect.fnUntraced(function*(id) {
    yield* cache.remove(id)
    yield* run("SessionStore.touch", "PEXPIRE", keyOf(id), (client) => client.pexpire(keyOf(id), ttl))
    // As in `refresh`: after our own write, only a fresh read may fill the cache.
    yield* cache.remove(id)
  }, Tracing.span("SessionStore.touch"))

  const flush: Service["flush"] = Effect.fnUntraced(function*(session) {
    // A hand-built session is written whole: against what is stored now.
    const current = session.snapshot === undefined ? Option.getOrUndefined(yield* retrieve(session.id)) : session
    const base = current?.snapshot
    // Its id does not exist: nothing to update, and a flush never creates.
    if (base === undefined) return
    const delta = Session.diff(session, base)
    const key = keyOf(session.id)
    const ticket = yield* cache.begin(session.id)
    const [exists, ...rest] = yield* exec("SessionStore.flush", key, (multi) => {
      // HEXISTS runs first inside the transaction: it tells whether the session was alive when we wrote.
      multi.hexists(key, Session.createdField)
      if (delta.set.length > 0) multi.hset(key, ...delta.set.flat())
      if (delta.remove.length > 0) multi.hdel(key, ...delta.remove)
      // HGETALL last: the state after our write, including any foreign write our own may have hidden
      // from tracking (see `refresh`). That, not "our snapshot + our delta", is what we cache.
      multi.pexpire(key, ttl).hgetall(key)
    }).pipe(Effect.tapError(() => cache.remove(session.id)))
    const now = yield* Clock.currentTimeMillis
    if (exists !== 1) {
      // Destroyed or expired meanwhile: our HSET made a hash without the creation field, which
      // readers ignore; delete it so it does not linger until its TTL.
      yield* cache.complete(ticket, undefined, now)
      yield* run("SessionStore.flush", "DEL", key, (client) => client.del(key))
      yield* connection.debug(`flush of a destroyed or expired session dropped`)
      return
    }
    const found = yield* decodeOrDrop(session.id, rest[rest.length - 1] as Record<string, string>, delta.next)
    yield* cache.complete(ticket, Option.getOrUndefined(found), now)
  }, Tracing.span("SessionStore.flush"))

  const store: Service = {
    backend: "redis",
    expire: config.expire,
    create,
    retrieve,
    flush,
    destroy,
    touch,
    ping: Effect.asVoid(run("SessionStore.ping", "PING", "", (client) => client.ping())),
    cacheStats: cache.stats
  }
  return store
})
