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
    // As in Redis: the sliding lifetime, never past the absolute one.
    const expiresAt = (fields: Readonly<Record<string, string>>, now: number) => {
      const created = Number(fields[Session.createdField])
      return absolute === undefined || !Number.isFinite(created) ? now + ttl : Math.min(now + ttl, created + absolute)
    }
    const entries = yield* Ref.make(new Map<string, Entry>())

    // Reads the live entry for `id`, purging it when expired, and optionally slides its expiry.
    const live = (id: string, slide: boolean) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(entries, (map) => {
          const entry = map.get(id)
          if (entry === undefined) return [undefined, map] as const
          if (entry.expiresAt <= now) {
            map.delete(id)
            return [undefined, map] as const
          }
          const next = slide
            ? { fields: entry.fields, expiresAt: expiresAt(entry.fields, now), refreshedAt: now }
            : entry
          map.set(id, next)
          return [next, map] as const
        }))

    // Expired entries nobody reads again would pile up: every so many writes, sweep them all.
    let writesUntilSweep = sweepEvery
    const write = (id: string, fields: Readonly<Record<string, string>>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.update(entries, (map) => {
          if (--writesUntilSweep === 0) {
            writesUntilSweep = sweepEvery
            for (const [key, entry] of map) if (entry.expiresAt <= now) map.delete(key)
          }
          return map.set(id, { fields, expiresAt: expiresAt(fields, now), refreshedAt: now })
        }))

    const retrieve: SessionStore["retrieve"] = (id) =>
      Effect.flatMap(live(id, true), (entry) =>
        entry === undefined ? Effect.succeedNone : Either.match(Session.decode(id, entry.fields), {
          onLeft: Effect.fail,
          onRight: Effect.succeed
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
          const id = options?.id ?? Session.makeId()
          const created = yield* Session.encodeNew(id, data, yield* Clock.currentTimeMillis, options?.user)
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
          const entry = yield* live(session.id, false)
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
          // The same version field as in Redis, so that both backends hold the same hash.
          if (!Session.isEmpty(delta) || rebind) {
            fields[Session.versionField] = String((Session.decodeVersion(entry.fields[Session.versionField]) ?? 0) + 1)
          }
          yield* write(session.id, fields)
        }),
      destroy: (id) =>
        Ref.update(entries, (map) => (map.delete(id), map)),
      touch: (id) =>
        Effect.asVoid(live(id, true)),
      ping: Effect.void,
      redis: () =>
        Effect.fail(
          new RedisCommandError({ method: "SessionStore.redis", command: "none: the in-memory backend has no Redis" })
        ),
      cacheStats: Effect.succeed({ hits: 0, misses: 0, invalidations: 0, clears: 0, size: 0, mode: "Off" })
    }
    return Enumeration.register(store, Enumeration.memory(Ref.get(entries)))
  })
