import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { RedisCommandError } from "../SessionError.js"
import type { MemoryOptions, SessionStore } from "../SessionStore.js"
import * as Session from "./codec.js"
import * as Enumeration from "./enumeration.js"
import * as InternalSchema from "./schema.js"
import * as UserIndex from "./userIndex.js"

/** A stored session: its hash fields, as Redis would hold them, when it expires, and when it was last used. */
interface Entry {
  readonly fields: Readonly<Record<string, string>>
  readonly expiresAt: number
  readonly refreshedAt: number
}

const sweepEvery = 1024

/** What a read of the map found, and whether it slid the expiry. */
interface Found {
  readonly entry: Entry | undefined
  readonly refreshed: boolean
}

const notFound: Found = { entry: undefined, refreshed: false }

const decodeExpire = Schema.decodeUnknown(InternalSchema.lifetime("seconds"))

/**
 * The in-memory backend. It keeps the hash fields exactly as the Redis backend
 * writes them, so both backends decode, merge and expire sessions alike.
 * Expiry runs on Effect's `Clock`, so `TestClock` drives it.
 *
 * @internal
 */
export const make = (options: MemoryOptions = {}): Effect.Effect<SessionStore> =>
  Effect.gen(function*() {
    // The same rules as the Redis backend's `expire`: a bare number means seconds.
    const expire = options.expire === undefined
      ? InternalSchema.defaultExpire
      : yield* Effect.orDie(decodeExpire(options.expire))
    const absoluteExpire = options.absoluteExpire === undefined
      ? undefined
      : yield* Effect.orDie(decodeExpire(options.absoluteExpire))
    const ttl = Duration.toMillis(expire)
    const absolute = absoluteExpire === undefined ? undefined : Duration.toMillis(absoluteExpire)
    // The session's own lifetime (its `$e` field), or the store's.
    const lifetimeOf = (fields: Readonly<Record<string, string>>) => {
      const own = Object.hasOwn(fields, Session.expireField) ? Number(fields[Session.expireField]) : Number.NaN
      return Number.isFinite(own) && own > 0 ? own : ttl
    }
    // As in Redis: the sliding lifetime, never past the absolute one.
    const expiresAt = (fields: Readonly<Record<string, string>>, now: number) => {
      const created = Number(fields[Session.createdField])
      const life = lifetimeOf(fields)
      return absolute === undefined || !Number.isFinite(created) ? now + life : Math.min(now + life, created + absolute)
    }
    const entries = yield* Ref.make(new Map<string, Entry>())

    // Reads the live entry for `id`, purging it when expired, and slides its expiry: always (a touch),
    // when due (a read: as in Redis, once a tenth of the lifetime has passed since the last refresh),
    // or never. Tells whether it slid.
    const live = (id: string, slide: "always" | "due" | "never") =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(entries, (map): readonly [Found, Map<string, Entry>] => {
          const entry = map.get(id)
          if (entry === undefined) {
            return [notFound, map] as const
          }
          if (entry.expiresAt <= now) {
            map.delete(id)
            return [notFound, map] as const
          }
          const due = slide === "always" ||
            (slide === "due" && now - entry.refreshedAt >= Math.max(1, Math.floor(lifetimeOf(entry.fields) / 10)))
          if (!due) {
            return [{ entry, refreshed: false }, map] as const
          }
          const next = { fields: entry.fields, expiresAt: expiresAt(entry.fields, now), refreshedAt: now }
          map.set(id, next)
          return [{ entry: next, refreshed: true }, map] as const
        }))

    // Expired entries nobody reads again would pile up: every so many writes, sweep them all.
    let writesUntilSweep = sweepEvery
    const write = (id: string, fields: Readonly<Record<string, string>>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.update(entries, (map) => {
          if (--writesUntilSweep === 0) {
            writesUntilSweep = sweepEvery
            for (const [key, entry] of map) {
              if (entry.expiresAt <= now) {
                map.delete(key)
              }
            }
          }
          return map.set(id, { fields, expiresAt: expiresAt(fields, now), refreshedAt: now })
        }))

    const retrieve: SessionStore["retrieve"] = (id) =>
      Effect.flatMap(live(id, "due"), ({ entry, refreshed }) =>
        entry === undefined ? Effect.succeedNone : Either.match(Session.decode(id, entry.fields), {
          onLeft: Effect.fail,
          onRight: (found) =>
            Effect.succeed(refreshed ? Option.map(found, Session.refreshed) : found)
        }))

    // The live entries bound to `user`: a scan, which is fine for a backend meant for development.
    const boundTo = (user: string, now: number) =>
      Effect.map(Ref.get(entries), (map) => {
        const found: Array<readonly [string, Entry]> = []
        for (const [id, entry] of map) {
          if (
            entry.expiresAt > now && Object.hasOwn(entry.fields, Session.userField) &&
            entry.fields[Session.userField] === user
          ) {
            found.push([id, entry])
          }
        }
        return found
      })

    const store: SessionStore = {
      backend: "memory",
      expire,
      absoluteExpire,
      sessionsOf: (user) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.map(boundTo(user, now), (found) =>
            found.map(([id, entry]): Session.SessionInfo => {
              const createdAt = Number(entry.fields[Session.createdField])
              return { id, createdAt, expiresAt: entry.expiresAt, lastActiveAt: Math.max(createdAt, entry.refreshedAt) }
            }).sort(UserIndex.oldestFirst))),
      destroyAll: (user, options) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.flatMap(boundTo(user, now), (found) =>
            Ref.modify(entries, (map) => {
              let destroyed = 0
              for (const [id] of found) {
                if (id !== options?.except && map.delete(id)) {
                  destroyed++
                }
              }
              return [destroyed, map] as const
            }))),
      create: (data = {}, options) =>
        Effect.gen(function*() {
          const given = options?.id
          // As in Redis, where a given id becomes part of a key.
          if (given !== undefined && !Session.isStorableId(given)) {
            return yield* Effect.fail(Session.unstorableId())
          }
          const id = given ?? Session.makeId()
          const expire = yield* Session.lifetimeMillis(options?.expire)
          const created = yield* Session.encodeNew(id, data, yield* Clock.currentTimeMillis, options?.user, expire)
          yield* write(id, Object.fromEntries(created.fields))
          return created.session
        }),
      retrieve,
      flush: (session) =>
        Effect.gen(function*() {
          const base = session.snapshot ?? Option.getOrUndefined(yield* retrieve(session.id))?.snapshot
          if (base === undefined) {
            return
          }
          // Encoded before anything is looked at, as the Redis backend does: a value with no JSON form
          // fails the same way whether or not the session still exists.
          const delta = yield* Session.encodeDelta(session, base)
          const user = Session.requestedUser(session, base)
          const rebind = user !== base.user
          const expire = yield* Session.requestedExpire(session, base)
          const relife = expire !== base.expire
          const { entry } = yield* live(session.id, "never")
          // Gone (destroyed or expired): a flush never brings a session back.
          if (entry === undefined) {
            return
          }
          const fields: Record<string, string> = { ...entry.fields }
          for (const [field, value] of delta.set) {
            fields[field] = value
          }
          for (const field of delta.remove) {
            delete fields[field]
          }
          if (rebind) {
            if (user === undefined) {
              delete fields[Session.userField]
            } else fields[Session.userField] = user
          }
          if (relife) {
            if (expire === undefined) {
              delete fields[Session.expireField]
            } else fields[Session.expireField] = String(expire)
          }
          // The same version field as in Redis, so that both backends hold the same hash.
          if (!Session.isEmpty(delta) || rebind || relife) {
            fields[Session.versionField] = String((Session.decodeVersion(entry.fields[Session.versionField]) ?? 0) + 1)
          }
          yield* write(session.id, fields)
        }),
      destroy: (id) =>
        Ref.update(entries, (map) => (map.delete(id), map)),
      // One atomic step here: the old entry is checked, deleted and replaced at once.
      regenerate: (session, options) =>
        Effect.gen(function*() {
          const login = options !== undefined && Object.hasOwn(options, "user")
          const now = yield* Clock.currentTimeMillis
          const id = Session.makeId()
          // The lifetime asked for, or (below) the one stored with the session at the moment of the move.
          const asked = Object.hasOwn(session, "expire")
          const expire = asked ? yield* Session.lifetimeMillis(session.expire) : undefined
          const made = yield* Session.encodeNew(id, session.data, now, undefined, expire)
          return yield* Ref.modify(entries, (map): [Option.Option<Session.Session>, Map<string, Entry>] => {
            const entry = map.get(session.id)
            if (entry === undefined || entry.expiresAt <= now) {
              return [Option.none(), map]
            }
            const stored = Object.hasOwn(entry.fields, Session.expireField)
              ? Number(entry.fields[Session.expireField])
              : undefined
            const life = asked ? expire : stored
            const user = login
              ? options.user
              : Object.hasOwn(entry.fields, Session.userField)
              ? entry.fields[Session.userField]
              : undefined
            const fields: Record<string, string> = Object.fromEntries(made.fields)
            if (user !== undefined) {
              fields[Session.userField] = user
            }
            if (life !== undefined) {
              fields[Session.expireField] = String(life)
            }
            map.delete(session.id)
            map.set(id, { fields, expiresAt: expiresAt(fields, now), refreshedAt: now })
            const snapshot = Session.withExpire(Session.withUser(made.session.snapshot!, user), life)
            return [Option.some(Session.make(id, now, snapshot)), map]
          })
        }),
      touch: (id) =>
        Effect.asVoid(live(id, "always")),
      ping: Effect.void,
      redis: () =>
        Effect.fail(
          new RedisCommandError({ method: "SessionStore.redis", command: "none: the in-memory backend has no Redis" })
        ),
      cacheStats: Effect.succeed({
        hits: 0,
        misses: 0,
        invalidations: 0,
        received: 0,
        clears: 0,
        size: 0,
        mode: "Off",
        pending: 0
      })
    }
    return Enumeration.register(store, Enumeration.memory(Ref.get(entries)))
  })
