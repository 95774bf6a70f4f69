/**
 * The writes of the Redis store: create, flush, touch, the lifetime refresh
 * of the read path, and destroy. Each is one script on the session's key
 * (see `scripts.ts` for what it sends and why it ends with a read).
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { RedisCommandError, type SessionStoreError } from "../SessionError.js"
import type { SessionStore } from "../SessionStore.js"
import type { Ticket } from "./cache.js"
import * as Session from "./codec.js"
import type { Parts } from "./redisParts.js"
import * as Scripts from "./scripts.js"
import * as Tracing from "./tracing.js"

/**
 * What a refresh found: the session as we hold it, gone, or changed by
 * someone else (then, its new state).
 *
 * @internal
 */
export type Refreshed =
  | { readonly _tag: "Kept" }
  | { readonly _tag: "Gone" }
  | { readonly _tag: "Changed"; readonly session: Option.Option<Session.Session> }

// A write's near-cache ticket is scoped to it (see SessionCache.begin), and it gets a span when traced.
const scopedSpan = (name: string) => <A, E, R>(self: Effect.Effect<A, E, R>) => Tracing.span(name)(Effect.scoped(self))

// How many times a regenerate follows a binding that changed under it before giving up.
const maxRebinds = 5

const kept: Refreshed = Object.freeze({ _tag: "Kept" })
const gone: Refreshed = Object.freeze({ _tag: "Gone" })

/**
 * The write operations.
 *
 * @internal
 */
export interface Writes {
  readonly create: SessionStore["create"]
  readonly flush: SessionStore["flush"]
  readonly touch: SessionStore["touch"]
  readonly destroy: SessionStore["destroy"]
  readonly regenerate: SessionStore["regenerate"]
  /**
   * Refreshes the lifetime of `session`, which we hold, and tells whether Redis still holds the
   * same. The session stays cached only then; when someone else changed it, the script's reply
   * carries the new state, which fills the cache instead.
   */
  readonly refresh: (method: string, session: Session.Session) => Effect.Effect<Refreshed, SessionStoreError>
}

/**
 * Makes the writes; `retrieve` reads a session a hand-built flush is written against.
 *
 * @internal
 */
export const make = (
  parts: Parts,
  retrieve: SessionStore["retrieve"]
): Writes => {
  const { cache, clock, dropOnError, keyOf, lifeOf, lifetimeOf, replicated, write } = parts

  // What a reply says Redis holds now, decoded against what we hold, and installed if the ticket
  // still holds: a foreign write (Changed) gives us its state in the same round trip.
  const settle = (
    ticket: Ticket,
    id: string,
    fields: Record<string, string>,
    previous: Session.Snapshot | undefined
  ) =>
    Effect.flatMap(parts.decodeOrDrop(id, fields, previous), (found) => {
      const now = clock.unsafeCurrentTimeMillis()
      const session = Option.isSome(found) && parts.isOver(found.value, now) ? Option.none() : found
      return Effect.as(cache.complete(ticket, Option.getOrUndefined(session), now), session)
    })

  const create: Writes["create"] = Effect.fnUntraced(function*(data = {}, options) {
    const given = options?.id
    // A given id becomes part of a key: one outside our alphabet could name a user's index.
    if (given !== undefined && !Session.isStorableId(given)) return yield* Effect.fail(Session.unstorableId())
    const user = options?.user
    const expire = yield* Session.lifetimeMillis(options?.expire)
    const life = expire ?? parts.ttl
    const id = given ?? Session.makeId()
    const key = keyOf(id)
    const now = yield* Clock.currentTimeMillis
    const { fields, session } = yield* Session.encodeNew(id, data, now, user, expire)
    const ticket = yield* cache.begin(id)
    const lifetime = lifetimeOf(now, now, life)
    yield* write(
      "SessionStore.create",
      Scripts.create,
      key,
      user === undefined ? undefined : parts.indexFor(user, id, now, true, life),
      Scripts.createArgs(given !== undefined, lifetime, fields),
      (multi) => Scripts.fallback.create(multi, key, given !== undefined, lifetime, fields),
      () => ({ _tag: "Expected", version: Session.firstVersion })
    )
    yield* replicated("SessionStore.create", key).pipe(dropOnError(id))
    // The script replaced whatever was stored under the id in one step, and its read-back keeps us
    // tracking the key: what we wrote is what Redis holds until an invalidation says otherwise.
    yield* cache.complete(ticket, session, now)
    return session
  }, scopedSpan("SessionStore.create"))

  const refresh: Writes["refresh"] = Effect.fnUntraced(function*(method: string, session: Session.Session) {
    const key = keyOf(session.id)
    const ticket = yield* cache.begin(session.id)
    const at = yield* Clock.currentTimeMillis
    const user = session.user
    const expected = session.snapshot?.version ?? 0
    const life = lifeOf(session)
    const lifetime = lifetimeOf(session.createdAt, at, life)
    const answer = yield* write(
      method,
      Scripts.refresh,
      key,
      user === undefined ? undefined : parts.indexFor(user, session.id, at, false, life),
      Scripts.refreshArgs(lifetime, expected),
      (multi) => Scripts.fallback.refresh(multi, key, lifetime),
      (replies) => Scripts.fallbackAnswer(replies, expected)
    ).pipe(dropOnError(session.id))
    if (method !== "SessionStore.retrieve") yield* replicated(method, key).pipe(dropOnError(session.id))
    const now = yield* Clock.currentTimeMillis
    switch (answer._tag) {
      case "Gone":
        yield* cache.complete(ticket, undefined, now)
        return gone
      case "Expected":
        yield* cache.complete(ticket, session, now)
        return kept
      case "Changed":
        return { _tag: "Changed" as const, session: yield* settle(ticket, session.id, answer.fields, session.snapshot) }
    }
  }, Effect.scoped)

  const destroy: Writes["destroy"] = Effect.fnUntraced(function*(id) {
    // No session can be stored under such an id (see `create`), and its key may be another kind's.
    if (!Session.isStorableId(id)) return
    yield* cache.remove(id)
    yield* parts.connection.run("SessionStore.destroy", "DEL", keyOf(id), (client) => client.del(keyOf(id)))
    yield* replicated("SessionStore.destroy", keyOf(id))
    // A read that started before the DEL may have been answered after it: drop whatever it installed.
    yield* cache.remove(id)
  }, Tracing.span("SessionStore.destroy"))

  const touch: Writes["touch"] = Effect.fnUntraced(function*(id) {
    if (!Session.isStorableId(id)) return
    const entry = yield* cache.peek(id, clock.unsafeCurrentTimeMillis())
    // Cached: refresh it and keep it if nothing changed (see `refresh`).
    if (entry !== undefined) {
      yield* refresh("SessionStore.touch", entry.session)
      return
    }
    // Not cached: the creation time, user and own lifetime are read first, since the new lifetime may
    // not reach past the absolute one and a bound session's index must be stretched with it. A read
    // racing our write must not install what it read before it.
    const key = keyOf(id)
    yield* cache.remove(id)
    const [created, user, expire] = yield* parts.connection.run(
      "SessionStore.touch",
      "HMGET",
      key,
      (client) => client.hmget(key, Session.createdField, Session.userField, Session.expireField)
    )
    if (created === null) return
    const now = yield* Clock.currentTimeMillis
    const life = parts.storedLife(expire)
    const lifetime = lifetimeOf(Number(created), now, life)
    yield* write(
      "SessionStore.touch",
      Scripts.refresh,
      key,
      user === null ? undefined : parts.indexFor(user, id, now, false, life),
      Scripts.refreshArgs(lifetime, "*"),
      (multi) => Scripts.fallback.refresh(multi, key, lifetime),
      (replies) => Scripts.fallbackAnswer(replies, "*")
    )
    yield* replicated("SessionStore.touch", key)
    yield* cache.remove(id)
  }, Tracing.span("SessionStore.touch"))

  const flush: Writes["flush"] = Effect.fnUntraced(function*(session) {
    if (!Session.isStorableId(session.id)) return
    // A hand-built session is written whole: against what is stored now.
    const current = session.snapshot === undefined ? Option.getOrUndefined(yield* retrieve(session.id)) : session
    const base = current?.snapshot
    // Its id does not exist: nothing to update, and a flush never creates.
    if (current === undefined || base === undefined) return
    const delta = yield* Session.encodeDelta(session, base)
    const user = Session.requestedUser(session, base)
    const rebind = user !== base.user
    const expire = yield* Session.requestedExpire(session, base)
    const relife = expire !== base.expire
    const life = expire ?? parts.ttl
    const next = Session.make(session.id, current.createdAt, delta.next)
    const at = clock.unsafeCurrentTimeMillis()
    if (parts.isOver(next, at)) return yield* cache.remove(session.id)
    // Nothing changed: only the lifetime is refreshed.
    if (Session.isEmpty(delta) && !rebind && !relife) {
      yield* refresh("SessionStore.flush", next)
      return
    }
    const key = keyOf(session.id)
    const ticket = yield* cache.begin(session.id)
    // A rebind or a new lifetime is a change of a metadata field, and bumps the version like any
    // other: every cached copy of the session must learn it.
    const set: Array<readonly [string, string]> = [...delta.set]
    const remove: Array<string> = [...delta.remove]
    if (rebind) {
      if (user === undefined) remove.push(Session.userField)
      else set.push([Session.userField, user])
    }
    if (relife) {
      if (expire === undefined) remove.push(Session.expireField)
      else set.push([Session.expireField, String(expire)])
    }
    const lifetime = lifetimeOf(current.createdAt, at, life)
    // The new user's index is written with the session (see Parts.write); the old one keeps a
    // stale member, which readers skip.
    const answer = yield* write(
      "SessionStore.flush",
      Scripts.flush,
      key,
      user === undefined ? undefined : parts.indexFor(user, session.id, at, rebind, life),
      Scripts.flushArgs(lifetime, base.version, set, remove),
      (multi) => Scripts.fallback.flush(multi, key, lifetime, set, remove),
      (replies) => Scripts.fallbackAnswer(replies, base.version + 1)
    ).pipe(dropOnError(session.id))
    yield* replicated("SessionStore.flush", key).pipe(dropOnError(session.id))
    const now = clock.unsafeCurrentTimeMillis()
    switch (answer._tag) {
      case "Gone":
        // Destroyed or expired meanwhile: the script wrote nothing.
        yield* cache.complete(ticket, undefined, now)
        return yield* parts.connection.debug(`flush of a destroyed or expired session dropped`)
      case "Expected":
        // Ours landed on exactly one more than the version we read: nobody wrote in between, and
        // what we read plus what we wrote is what Redis holds.
        return yield* cache.complete(
          ticket,
          Session.make(
            session.id,
            current.createdAt,
            Session.withExpire(Session.withUser(Session.withVersion(delta.next, answer.version), user), expire)
          ),
          now
        )
      case "Changed":
        yield* settle(ticket, session.id, answer.fields, delta.next)
    }
  }, scopedSpan("SessionStore.flush"))

  // A move across keys that Redis Cluster may put on different nodes, so in single-key steps whose
  // order makes it atomic for every other operation:
  // 1. the new session is created, bound (and listed in the user's index) as the old one is believed
  //    to be; nobody knows its id yet;
  // 2. a script deletes the old session if it is still alive and bound so (Scripts.moveOut);
  // 3. if it was gone, the new one is deleted, and the move did not happen; if its binding had
  //    changed, the new one is deleted and the move tried again with the binding it has now.
  // A destroy or destroyAll whose deletion of the old id comes before step 2 leaves it gone, so the
  // move does not happen. One whose deletion comes after step 2 finds the old id moved; destroyAll
  // then lists the index again and finds the new id, which was listed in step 1 (see destroyAll).
  // Uninterruptible: an interruption between the steps would leave a session nobody knows.
  const regenerate: Writes["regenerate"] = Effect.fnUntraced(
    function*(session, options) {
      const from = session.id
      if (!Session.isStorableId(from)) return Option.none()
      const login = options !== undefined && Object.hasOwn(options, "user")
      const key = keyOf(from)
      // The new session keeps the lifetime asked for, or the one the session was read with.
      const expire = Object.hasOwn(session, "expire")
        ? session.expire
        : session.snapshot?.expire === undefined
        ? undefined
        : Duration.millis(session.snapshot.expire)
      // Without a user to bind, a first guess of the stored binding: the one the session was read with.
      let user = login ? options.user : Object.hasOwn(session, "user") ? session.user : session.snapshot?.user
      for (let attempt = 0; attempt < maxRebinds; attempt++) {
        const created = yield* create(session.data, { user, expire })
        const binding = user === undefined ? "" : `=${user}`
        const moved = yield* parts.evalOr(
          "SessionStore.regenerate",
          key,
          Scripts.moveOut,
          [login ? "login" : "keep", binding],
          (client) => Scripts.moveOutWithoutScripts(client, key, login, binding)
        ).pipe(Effect.tapError(() => Effect.ignore(destroy(created.id))))
        if (moved === 1) {
          yield* cache.remove(from)
          yield* replicated("SessionStore.regenerate", key)
          return Option.some(created)
        }
        yield* destroy(created.id)
        if (!Array.isArray(moved)) {
          // Gone: whatever this instance still holds of it is stale.
          yield* cache.remove(from)
          return Option.none()
        }
        const bound = String(moved[1])
        user = bound === "" ? undefined : bound.slice(1)
      }
      return yield* Effect.fail(
        new RedisCommandError({
          method: "SessionStore.regenerate",
          command: "EVAL",
          cause: new Error(`the session's binding changed ${maxRebinds} times while it was being moved`)
        })
      )
    },
    Effect.uninterruptible,
    Tracing.span("SessionStore.regenerate")
  )

  return { create, flush, touch, destroy, refresh, regenerate }
}
