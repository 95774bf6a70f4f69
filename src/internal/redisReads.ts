/**
 * The reads of the Redis store: a hit served from the near-cache, a miss read
 * from Redis (which makes the connection track the key), and the sliding
 * lifetime refreshed at most once per tenth of it.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SessionStoreError } from "../SessionError.js"
import type { SessionStore } from "../SessionStore.js"
import * as Session from "./codec.js"
import * as LegacyImport from "./legacyImport.js"
import type { Parts } from "./redisParts.js"
import type { Writes } from "./redisWrites.js"

/**
 * Makes `retrieve`; `refresh` is the writes' lifetime refresh.
 *
 * @internal
 */
export const make = (parts: Parts, refresh: () => Writes["refresh"]): SessionStore["retrieve"] => {
  const { cache, clock, config, isOver, keyOf, lifeOf, refreshEveryOf, ttl } = parts
  const legacyPrefix = config.legacyPrefix

  // A miss reads the hash and its remaining lifetime in one round trip; from the lifetime we know
  // when it was last refreshed, so a read refreshes it only when due.
  const load = (
    id: string,
    refreshed = false,
    imported = false
  ): Effect.Effect<Option.Option<Session.Session>, SessionStoreError> =>
    Effect.gen(function*() {
      // No session can be stored under such an id (see `create`), and its key may be another kind's.
      if (!Session.isStorableId(id)) return Option.none()
      const key = keyOf(id)
      const ticket = yield* cache.begin(id)
      // With a legacy prefix, the legacy key is read in the same transaction: one consistent view,
      // in which another instance's import either has happened or has not.
      const legacyKey = legacyPrefix === undefined || imported ? undefined : legacyPrefix + id
      const [fields, remaining, legacyText] = (yield* parts.batch(
        "SessionStore.retrieve",
        legacyKey === undefined ? "HGETALL" : "MULTI",
        key,
        (commands) => {
          commands.hgetall(key).pttl(key)
          if (legacyKey !== undefined) commands.get(legacyKey)
        }
      )) as [Record<string, string>, number, string | null | undefined]
      const now = yield* Clock.currentTimeMillis
      const decoded = yield* parts.decodeOrDrop(id, fields, undefined)
      // A miss may be a session connect-redis wrote: import it once, then read it as ours.
      if (Option.isNone(decoded) && legacyKey !== undefined && typeof legacyText === "string") {
        const imported = yield* LegacyImport.importSession({
          run: parts.connection.run,
          legacyKey,
          key,
          id,
          text: legacyText,
          ttl,
          now
        })
        if (imported) return yield* load(id, refreshed, true)
      }
      // Past its absolute lifetime: gone, even if Redis (on another clock) has not expired it yet.
      const found = Option.isSome(decoded) && isOver(decoded.value, now) ? Option.none() : decoded
      const refreshedAt = Option.isSome(found) ? now - (lifeOf(found.value) - remaining) : now
      if (!refreshed && Option.isSome(found) && now - refreshedAt >= refreshEveryOf(found.value)) {
        return yield* reconcile(found.value)
      }
      yield* cache.complete(ticket, Option.getOrUndefined(found), now, refreshedAt)
      return found
    }).pipe(Effect.scoped)

  // After a refresh: what we hold if it is still current; otherwise what the refresh's reply said
  // Redis holds now. Either way the session returned is marked refreshed, a copy made only here (once
  // per tenth of the lifetime), so that the middleware sends the cookie again and a hit stays free of
  // allocations.
  const reconcile = (session: Session.Session): Effect.Effect<Option.Option<Session.Session>, SessionStoreError> =>
    Effect.map(
      refresh()("SessionStore.retrieve", session),
      (outcome) =>
        outcome._tag === "Kept"
          ? Option.some(Session.refreshed(session))
          : outcome._tag === "Gone"
          ? Option.none()
          : Option.map(outcome.session, Session.refreshed)
    )

  // Reads get no span at all: even when a tracer is installed, one span per cache hit would cost
  // more than the hit. Writes get spans when a tracer is installed (see Tracing.span).
  return (id) =>
    Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(cache.lookup(id, now), (entry) =>
        entry === undefined
          ? load(id)
          : isOver(entry.session, now)
          ? Effect.as(cache.remove(id), Option.none())
          : now - entry.refreshedAt < refreshEveryOf(entry.session)
          ? Effect.succeed(entry.found)
          : reconcile(entry.session))
    })
}
