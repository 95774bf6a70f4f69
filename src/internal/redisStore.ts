import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { ChainableCommander } from "ioredis"
import type { SessionConfig } from "../SessionConfig.js"
import type { SessionStoreError } from "../SessionError.js"
import type { SessionStore } from "../SessionStore.js"
import * as SessionCache from "./cache.js"
import * as Session from "./codec.js"
import * as Redis from "./redis.js"
import * as Replication from "./replication.js"
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

  // With `waitReplicas`, a write is acknowledged only once WAIT confirms that many replicas have it.
  const waitReplicas = Replication.make(config, connection)
  const replicated = (method: string, _key: string) => waitReplicas(method)

  // Captured once: the hit path reads the time without an effect of its own (TestClock still applies).
  const clock = yield* Effect.clock

  // One round trip for several commands, sent at once rather than on the auto-pipelining turn: a
  // MULTI (atomic), or a plain pipeline, named in debug lines and errors by `command`.
  const batch = (
    method: string,
    command: "MULTI" | "HGETALL",
    key: string,
    build: (commands: ChainableCommander) => void
  ) =>
    Effect.flatMap(
      run(method, command, key, (client) => {
        const commands = command === "MULTI" ? client.multi() : client.pipeline()
        build(commands)
        return commands.exec() as Promise<ExecResult>
      }),
      (replies) => {
        const failed = replies?.find(([error]) => error !== null)?.[0]
        return replies === null || failed !== undefined
          ? Effect.fail(
            Redis.toError(method, command === "MULTI" ? "EXEC" : command, failed ?? new Error("transaction aborted"))
          )
          : Effect.succeed(replies.map(([, result]) => result))
      }
    )

  const decodeOrDrop = (id: string, fields: Record<string, string>, previous: Session.Snapshot | undefined) =>
    Either.match(Session.decode(id, fields, previous), {
      onLeft: (error) => Effect.zipRight(cache.remove(id), Effect.fail(error)),
      onRight: Effect.succeed
    })

  // A reply that failed may still have been executed: drop what we hold rather than guess.
  const dropOnError = (id: string) => <A, E>(self: Effect.Effect<A, E>) => Effect.tapError(self, () => cache.remove(id))

  const create: SessionStore["create"] = Effect.fnUntraced(function*(data = {}, options) {
    const given = options?.id
    const id = given ?? Session.makeId()
    const key = keyOf(id)
    const now = yield* Clock.currentTimeMillis
    const { fields, session } = yield* Session.encodeNew(id, data, now)
    const ticket = yield* cache.begin(id)
    yield* batch("SessionStore.create", "MULTI", key, (multi) => {
      // Under a given id, whatever was there is replaced, not merged.
      if (given !== undefined) multi.del(key)
      multi.hset(key, ...fields.flat()).pexpire(key, ttl)
    })
    yield* replicated("SessionStore.create", key).pipe(dropOnError(id))
    // A fresh random id: nobody else can have written it, so what we wrote is what Redis holds.
    // A given id may have been written by others too: only a read may fill the cache then.
    yield* cache.complete(ticket, given === undefined ? session : undefined, now)
    return session
  }, Tracing.span("SessionStore.create"))

  // Refreshes the lifetime of `session`, which we hold, and tells whether Redis still holds the
  // same: alive (creation field present) and at the same version. Our own PEXPIRE may hide a
  // foreign write made in the same Redis event-loop cycle (BCAST tracking remembers only the last
  // writer of a key per cycle, and NOLOOP skips it); every data-changing write bumps the version,
  // so an unchanged version means there was none. `session` stays cached only then.
  const refresh = Effect.fnUntraced(function*(method: string, session: Session.Session) {
    const key = keyOf(session.id)
    const ticket = yield* cache.begin(session.id)
    const [, [created, version]] = (yield* batch(
      method,
      "MULTI",
      key,
      (multi) => multi.pexpire(key, ttl).hmget(key, Session.createdField, Session.versionField)
    ).pipe(dropOnError(session.id))) as [unknown, [string | null, string | null]]
    if (method !== "SessionStore.retrieve") yield* replicated(method, key).pipe(dropOnError(session.id))
    const now = yield* Clock.currentTimeMillis
    const outcome = created === null
      ? "Gone" as const
      : Session.decodeVersion(version) === session.snapshot?.version
      ? "Kept" as const
      : "Changed" as const
    yield* cache.complete(ticket, outcome === "Kept" ? session : undefined, now)
    return outcome
  })

  // A miss reads the hash and its remaining lifetime in one round trip; from the lifetime we know
  // when it was last refreshed, so a read refreshes it only when due.
  const load = (id: string, refreshed = false): Effect.Effect<Option.Option<Session.Session>, SessionStoreError> =>
    Effect.gen(function*() {
      const key = keyOf(id)
      const ticket = yield* cache.begin(id)
      const [fields, remaining] = (yield* batch(
        "SessionStore.retrieve",
        "HGETALL",
        key,
        (pipeline) => pipeline.hgetall(key).pttl(key)
      )) as [Record<string, string>, number]
      const now = yield* Clock.currentTimeMillis
      const found = yield* decodeOrDrop(id, fields, undefined)
      const refreshedAt = now - (ttl - remaining)
      if (!refreshed && Option.isSome(found) && now - refreshedAt >= refreshEvery) {
        return yield* reconcile(id, found.value, found)
      }
      yield* cache.complete(ticket, Option.getOrUndefined(found), now, refreshedAt)
      return found
    })

  // After a refresh: what we hold if it is still current, otherwise a fresh read (which, just
  // refreshed, does not refresh again).
  const reconcile = (
    id: string,
    session: Session.Session,
    found: Option.Option<Session.Session>
  ): Effect.Effect<Option.Option<Session.Session>, SessionStoreError> =>
    Effect.flatMap(
      refresh("SessionStore.retrieve", session),
      (outcome) =>
        outcome === "Kept"
          ? Effect.succeed(found)
          : outcome === "Gone"
          ? Effect.succeedNone
          : load(id, true)
    )

  // Reads get no span at all: even when a tracer is installed, one span per cache hit would cost
  // more than the hit. Writes get spans when a tracer is installed (see Tracing.span).
  const retrieve: SessionStore["retrieve"] = (id) =>
    Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(cache.lookup(id, now), (entry) =>
        entry === undefined
          ? load(id)
          : now - entry.refreshedAt < refreshEvery
          ? Effect.succeed(entry.found)
          : reconcile(id, entry.session, entry.found))
    })

  const destroy: SessionStore["destroy"] = Effect.fnUntraced(function*(id) {
    yield* cache.remove(id)
    yield* run("SessionStore.destroy", "DEL", keyOf(id), (client) => client.del(keyOf(id)))
    yield* replicated("SessionStore.destroy", keyOf(id))
    // A read that started before the DEL may have been answered after it: drop whatever it installed.
    yield* cache.remove(id)
  }, Tracing.span("SessionStore.destroy"))

  const touch: SessionStore["touch"] = Effect.fnUntraced(function*(id) {
    const entry = yield* cache.peek(id, clock.unsafeCurrentTimeMillis())
    // Cached: refresh it and keep it if nothing changed (see `refresh`).
    if (entry !== undefined) {
      yield* refresh("SessionStore.touch", entry.session)
      return
    }
    // Not cached: a bare PEXPIRE. A read racing it must not install what it read before our write.
    yield* cache.remove(id)
    yield* run("SessionStore.touch", "PEXPIRE", keyOf(id), (client) => client.pexpire(keyOf(id), ttl))
    yield* replicated("SessionStore.touch", keyOf(id))
    yield* cache.remove(id)
  }, Tracing.span("SessionStore.touch"))

  const flush: SessionStore["flush"] = Effect.fnUntraced(function*(session) {
    // A hand-built session is written whole: against what is stored now.
    const current = session.snapshot === undefined ? Option.getOrUndefined(yield* retrieve(session.id)) : session
    const base = current?.snapshot
    // Its id does not exist: nothing to update, and a flush never creates.
    if (current === undefined || base === undefined) return
    const delta = yield* Session.encodeDelta(session, base)
    const next = Session.make(session.id, current.createdAt, delta.next)
    // Nothing changed: only the lifetime is refreshed.
    if (Session.isEmpty(delta)) {
      yield* refresh("SessionStore.flush", next)
      return
    }
    const key = keyOf(session.id)
    const ticket = yield* cache.begin(session.id)
    const replies = yield* batch("SessionStore.flush", "MULTI", key, (multi) => {
      // HEXISTS runs first inside the transaction: it tells whether the session was alive when we wrote.
      multi.hexists(key, Session.createdField)
      if (delta.set.length > 0) multi.hset(key, ...delta.set.flat())
      if (delta.remove.length > 0) multi.hdel(key, ...delta.remove)
      multi.hincrby(key, Session.versionField, 1).pexpire(key, ttl)
    }).pipe(dropOnError(session.id))
    yield* replicated("SessionStore.flush", key).pipe(dropOnError(session.id))
    const now = yield* Clock.currentTimeMillis
    if (replies[0] !== 1) {
      // Destroyed or expired meanwhile: our HSET made a hash without the creation field, which
      // readers ignore; delete it so it does not linger until its TTL.
      yield* cache.complete(ticket, undefined, now)
      yield* run("SessionStore.flush", "DEL", key, (client) => client.del(key))
      yield* connection.debug(`flush of a destroyed or expired session dropped`)
      return
    }
    // Our own write may hide a foreign one made in the same Redis event-loop cycle (see `refresh`).
    // Every data-changing write bumps the version: if ours landed on exactly one more than the
    // version we read, nobody wrote in between, and what we read plus what we wrote is what Redis
    // holds. Otherwise the entry is dropped and the next read, if any, fetches the merged state.
    const version = replies[replies.length - 2]
    yield* cache.complete(
      ticket,
      version === base.version + 1
        ? Session.make(session.id, current.createdAt, Session.withVersion(delta.next, version))
        : undefined,
      now
    )
  }, Tracing.span("SessionStore.flush"))

  const store: SessionStore = {
    backend: "redis",
    expire: config.expire,
    create,
    retrieve,
    flush,
    destroy,
    touch,
    ping: Effect.asVoid(run("SessionStore.ping", "PING", "", (client) => client.ping())),
    cacheStats: cache.stats,
    redis: (f) => run("SessionStore.redis", "(user)", "", f)
  }
  return store
})
