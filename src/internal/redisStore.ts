import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { type ChainableCommander, Redis as IORedis } from "ioredis"
import type { SessionConfig } from "../SessionConfig.js"
import { RedisCommandError, SessionConfigError, type SessionStoreError } from "../SessionError.js"
import type { SessionStore } from "../SessionStore.js"
import * as SessionCache from "./cache.js"
import * as ClusterTracking from "./clusterTracking.js"
import * as Session from "./codec.js"
import * as Enumeration from "./enumeration.js"
import * as LegacyImport from "./legacyImport.js"
import * as Redis from "./redis.js"
import * as Replication from "./replication.js"
import * as Slots from "./slots.js"
import * as Tracing from "./tracing.js"
import * as Tracking from "./tracking.js"
import * as UserIndex from "./userIndex.js"

type ExecResult = Array<[error: Error | null, result: unknown]> | null

// What a flush that found its session gone leaves behind is deleted, but only while it still has
// no creation field: a create under the same id may have landed since.
const deleteIfNotCreated =
  "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return redis.call('DEL', KEYS[1]) end return 0"

/** The index part of a write: its commands, queued on a transaction, on the index's own key. */
interface IndexPart {
  readonly key: string
  readonly build: (commands: ChainableCommander) => void
}

/**
 * The Redis backend: one hash per session, delta writes, sliding expiry, and
 * a near-cache kept coherent by Redis client-side-caching invalidations.
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
  const { run } = connection
  const ttl = Duration.toMillis(config.expire)
  // Sliding expiry costs a PEXPIRE, and Redis announces every PEXPIRE to the other instances, which
  // then drop their copy. So the lifetime is refreshed only when a tenth of it has passed.
  const refreshEvery = Math.max(1, Math.floor(ttl / 10))
  const cache = yield* SessionCache.make({
    capacity: config.cache.enabled ? config.cache.capacity : 0,
    ttl,
    maxStaleness: Duration.toMillis(config.cache.maxStaleness),
    // On a Cluster each slot is tracked through its master: losing one master drops only its slots.
    ...(clustered ? { partitionOf: (id: string) => Slots.slotOf(config.prefix + id) } : {})
  })
  if (config.cache.enabled && config.cache.capacity > 0) {
    yield* (clustered ? ClusterTracking.start(config, connection, cache) : Tracking.start(config, connection, cache))
  }

  const keyOf = (id: string) => config.prefix + id
  const legacyPrefix = config.legacyPrefix
  const indexOf = (user: string) => UserIndex.keyOf(config.prefix, user)
  const absolute = config.absoluteExpire === undefined ? undefined : Duration.toMillis(config.absoluteExpire)
  // What PEXPIRE gets: the sliding lifetime, cut so that it never reaches past the absolute one.
  // Zero or less deletes the key, as an absolute lifetime that has run out should.
  const lifetimeOf = (createdAt: number | undefined, now: number) =>
    absolute === undefined || createdAt === undefined ? ttl : Math.min(ttl, createdAt + absolute - now)
  const isOver = (session: Session.Session, now: number) =>
    absolute !== undefined && session.createdAt !== undefined && session.createdAt + absolute <= now

  // With `waitReplicas`, a write is acknowledged only once WAIT confirms that many replicas have it.
  const waitReplicas = Replication.make(config, connection)
  const replicated = (method: string, key: string) => waitReplicas(method, key)

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

  // A write that binds a session to a user: the index's commands come first, so a session is never
  // live without being listed. On one server both parts are one transaction. On a Cluster the index
  // is on another slot, so it is a transaction of its own, sent first and acknowledged before the
  // session's; should the session's fail, the index lists a member that readers skip. The replies
  // are concatenated, index first, either way.
  const transaction = (
    method: string,
    key: string,
    index: IndexPart | undefined,
    build: (commands: ChainableCommander) => void
  ) =>
    index === undefined
      ? batch(method, "MULTI", key, build)
      : clustered
      ? Effect.flatMap(
        batch(method, "MULTI", index.key, index.build),
        (first) => Effect.map(batch(method, "MULTI", key, build), (rest) => [...first, ...rest])
      )
      : batch(method, "MULTI", key, (multi) => {
        index.build(multi)
        build(multi)
      })

  const decodeOrDrop = (id: string, fields: Record<string, string>, previous: Session.Snapshot | undefined) => {
    const decoded = Session.decode(id, fields, previous)
    return Either.isRight(decoded) ? Effect.succeed(decoded.right) : Effect.zipRight(cache.remove(id), decoded)
  }

  // A reply that failed may still have been executed: drop what we hold rather than guess.
  const dropOnError = (id: string) => <A, E>(self: Effect.Effect<A, E>) => Effect.tapError(self, () => cache.remove(id))

  const create: SessionStore["create"] = Effect.fnUntraced(function*(data = {}, options) {
    const given = options?.id
    const user = options?.user
    const id = given ?? Session.makeId()
    const key = keyOf(id)
    const now = yield* Clock.currentTimeMillis
    const { fields, session } = yield* Session.encodeNew(id, data, now, user)
    const ticket = yield* cache.begin(id)
    const index = user === undefined ? undefined : {
      key: indexOf(user),
      build: (multi: ChainableCommander) => UserIndex.bind(multi, indexOf(user), id, now + ttl, ttl, now)
    }
    yield* transaction("SessionStore.create", key, index, (multi) => {
      // Under a given id, whatever was there is replaced, not merged.
      if (given !== undefined) multi.del(key)
      multi.hset(key, ...fields.flat()).pexpire(key, lifetimeOf(now, now))
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
    const at = yield* Clock.currentTimeMillis
    const user = session.user
    // A bound session's index must outlive it: stretched with it, first.
    const index = user === undefined ? undefined : {
      key: indexOf(user),
      build: (multi: ChainableCommander) => UserIndex.bind(multi, indexOf(user), session.id, at + ttl, ttl)
    }
    const replies = yield* transaction(method, key, index, (multi) => {
      multi.pexpire(key, lifetimeOf(session.createdAt, at)).hmget(key, Session.createdField, Session.versionField)
    }).pipe(dropOnError(session.id))
    const [created, version] = replies[replies.length - 1] as [string | null, string | null]
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
  const load = (
    id: string,
    refreshed = false,
    imported = false
  ): Effect.Effect<Option.Option<Session.Session>, SessionStoreError> =>
    Effect.gen(function*() {
      const key = keyOf(id)
      const ticket = yield* cache.begin(id)
      // With a legacy prefix, the legacy key is read in the same transaction: one consistent view,
      // in which another instance's import either has happened or has not.
      const legacyKey = legacyPrefix === undefined || imported ? undefined : legacyPrefix + id
      const [fields, remaining, legacyText] = (yield* batch(
        "SessionStore.retrieve",
        legacyKey === undefined ? "HGETALL" : "MULTI",
        key,
        (commands) => {
          commands.hgetall(key).pttl(key)
          if (legacyKey !== undefined) commands.get(legacyKey)
        }
      )) as [Record<string, string>, number, string | null | undefined]
      const now = yield* Clock.currentTimeMillis
      const decoded = yield* decodeOrDrop(id, fields, undefined)
      // A miss may be a session connect-redis wrote: import it once, then read it as ours.
      if (Option.isNone(decoded) && legacyKey !== undefined && typeof legacyText === "string") {
        const imported = yield* LegacyImport.importSession({ run, legacyKey, key, id, text: legacyText, ttl, now })
        if (imported) return yield* load(id, refreshed, true)
      }
      // Past its absolute lifetime: gone, even if Redis (on another clock) has not expired it yet.
      const found = Option.isSome(decoded) && isOver(decoded.value, now) ? Option.none() : decoded
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
          : isOver(entry.session, now)
          ? Effect.as(cache.remove(id), Option.none())
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
    // Not cached: the creation time and user are read first, since the new lifetime may not reach past
    // the absolute one and a bound session's index must be stretched with it. A read racing our write
    // must not install what it read before it.
    const key = keyOf(id)
    yield* cache.remove(id)
    const [created, user] = yield* run(
      "SessionStore.touch",
      "HMGET",
      key,
      (client) => client.hmget(key, Session.createdField, Session.userField)
    )
    if (created === null) return
    const now = yield* Clock.currentTimeMillis
    const index = user === null ? undefined : {
      key: indexOf(user),
      build: (multi: ChainableCommander) => UserIndex.bind(multi, indexOf(user), id, now + ttl, ttl)
    }
    yield* transaction("SessionStore.touch", key, index, (multi) => {
      multi.pexpire(key, lifetimeOf(Number(created), now))
    })
    yield* replicated("SessionStore.touch", key)
    yield* cache.remove(id)
  }, Tracing.span("SessionStore.touch"))

  const flush: SessionStore["flush"] = Effect.fnUntraced(function*(session) {
    // A hand-built session is written whole: against what is stored now.
    const current = session.snapshot === undefined ? Option.getOrUndefined(yield* retrieve(session.id)) : session
    const base = current?.snapshot
    // Its id does not exist: nothing to update, and a flush never creates.
    if (current === undefined || base === undefined) return
    const delta = yield* Session.encodeDelta(session, base)
    const user = Session.requestedUser(session, base)
    const rebind = user !== base.user
    const next = Session.make(session.id, current.createdAt, delta.next)
    const at = clock.unsafeCurrentTimeMillis()
    if (isOver(next, at)) return yield* cache.remove(session.id)
    // Nothing changed: only the lifetime is refreshed.
    if (Session.isEmpty(delta) && !rebind) {
      yield* refresh("SessionStore.flush", next)
      return
    }
    const key = keyOf(session.id)
    const ticket = yield* cache.begin(session.id)
    // A session made by this library has a version from its creation, and HINCRBY's reply alone
    // tells whether it was alive (see Session.firstVersion). One without needs HEXISTS.
    const checkAlive = base.version === 0
    let first = 0
    // The new user's index first (see `transaction`); the old one keeps a stale member, which readers skip.
    const index = user === undefined ? undefined : {
      key: indexOf(user),
      build: (multi: ChainableCommander) => {
        first = UserIndex.bind(multi, indexOf(user), session.id, at + ttl, ttl, rebind ? at : undefined)
      }
    }
    const replies = yield* transaction("SessionStore.flush", key, index, (multi) => {
      // HEXISTS runs before the session's writes: it tells whether the session was alive when we wrote.
      if (checkAlive) multi.hexists(key, Session.createdField)
      if (delta.set.length > 0) multi.hset(key, ...delta.set.flat())
      if (delta.remove.length > 0) multi.hdel(key, ...delta.remove)
      if (rebind) {
        if (user === undefined) multi.hdel(key, Session.userField)
        else multi.hset(key, Session.userField, user)
      }
      // A rebind bumps the version too: every cached copy of the session must learn it.
      multi.hincrby(key, Session.versionField, 1).pexpire(key, lifetimeOf(current.createdAt, at))
    }).pipe(dropOnError(session.id))
    yield* replicated("SessionStore.flush", key).pipe(dropOnError(session.id))
    const now = clock.unsafeCurrentTimeMillis()
    const version = replies[replies.length - 2]
    if (checkAlive ? replies[first] !== 1 : version === Session.firstVersion) {
      // Destroyed or expired meanwhile: our HSET made a hash without the creation field, which
      // readers ignore; delete it, unless a create under this id got there first, so that it does
      // not linger until its TTL.
      yield* cache.complete(ticket, undefined, now)
      yield* run(
        "SessionStore.flush",
        "EVAL",
        key,
        (client) => client.eval(deleteIfNotCreated, 1, key, Session.createdField)
      )
      yield* connection.debug(`flush of a destroyed or expired session dropped`)
      return
    }
    // Our own write may hide a foreign one made in the same Redis event-loop cycle (see `refresh`).
    // Every data-changing write bumps the version: if ours landed on exactly one more than the
    // version we read, nobody wrote in between, and what we read plus what we wrote is what Redis
    // holds. Otherwise the entry is dropped and the next read, if any, fetches the merged state.
    yield* cache.complete(
      ticket,
      version === base.version + 1
        ? Session.make(session.id, current.createdAt, Session.withUser(Session.withVersion(delta.next, version), user))
        : undefined,
      now
    )
  }, Tracing.span("SessionStore.flush"))

  // The index, pruned and listed in one transaction on its own key.
  const membersOf = (method: string, user: string, now: number) =>
    Effect.map(
      batch(method, "MULTI", indexOf(user), (multi) => UserIndex.list(multi, indexOf(user), now)),
      (replies) => UserIndex.members(replies[1])
    )

  // Per member, commands on its own key, sent at once: one round trip on one server, one per node on
  // a Cluster (where a pipeline or transaction may not span slots).
  const sessionsOf: SessionStore["sessionsOf"] = Effect.fnUntraced(function*(user) {
    const members = yield* membersOf("SessionStore.sessionsOf", user, yield* Clock.currentTimeMillis)
    if (members.length === 0) return []
    const read = yield* run(
      "SessionStore.sessionsOf",
      "HMGET",
      indexOf(user),
      (client) =>
        Promise.all(
          members.map(({ id }) =>
            Promise.all([client.hmget(keyOf(id), Session.createdField, Session.userField), client.pttl(keyOf(id))])
          )
        )
    )
    const now = yield* Clock.currentTimeMillis
    const infos: Array<Session.SessionInfo> = []
    for (const [i, { deadline, id }] of members.entries()) {
      const [[created, boundTo], remaining] = read[i]!
      const info = UserIndex.info({ id, user, deadline, created, boundTo, remaining, now, ttl, absolute })
      if (info !== undefined) infos.push(info)
    }
    return infos.sort(UserIndex.oldestFirst)
  }, Tracing.span("SessionStore.sessionsOf"))

  const destroyAll: SessionStore["destroyAll"] = Effect.fnUntraced(function*(user, options) {
    const except = options?.except
    const index = indexOf(user)
    const members = (yield* membersOf("SessionStore.destroyAll", user, yield* Clock.currentTimeMillis))
      .map(({ id }) => id)
      .filter((id) => id !== except)
    if (members.length === 0) return 0
    const drop = Effect.forEach(members, cache.remove, { discard: true })
    yield* drop
    const outcomes = yield* run(
      "SessionStore.destroyAll",
      "EVAL",
      index,
      (client) =>
        Promise.all(members.map((id) => client.eval(UserIndex.destroyIfBound, 1, keyOf(id), user) as Promise<number>))
    )
    // A read that started before the deletions may have been answered after them (see destroy).
    yield* drop
    const destroyed = members.filter((_, i) => outcomes[i] === 1)
    // Ids are random and never reused, so these members can only be stale from now on.
    if (destroyed.length > 0) {
      yield* run("SessionStore.destroyAll", "ZREM", index, (client) => client.zrem(index, ...destroyed))
    }
    return destroyed.length
  }, Tracing.span("SessionStore.destroyAll"))

  const store: SessionStore = {
    backend: "redis",
    expire: config.expire,
    absoluteExpire: config.absoluteExpire,
    sessionsOf,
    destroyAll,
    create,
    retrieve,
    flush,
    destroy,
    touch,
    ping: Effect.asVoid(run("SessionStore.ping", "PING", "", (client) => client.ping())),
    cacheStats: cache.stats,
    redis: (f) =>
      Effect.suspend(() => {
        const client = connection.client
        return client instanceof IORedis
          ? run("SessionStore.redis", "(user)", "", () => f(client))
          : Effect.fail(
            new RedisCommandError({
              method: "SessionStore.redis",
              command: "(user)",
              cause: new Error("store.redis lends a single-server client: it is not available on Redis Cluster")
            })
          )
      })
  }
  return Enumeration.register(store, Enumeration.redis(config, connection, isOver))
})
