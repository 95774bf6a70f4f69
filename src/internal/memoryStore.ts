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
import * as InternalSchema from "./schema.js"

/** A stored session: its hash fields, as Redis would hold them, and when it expires. */
interface Entry {
  readonly fields: Readonly<Record<string, string>>
  readonly expiresAt: number
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
    const ttl = Duration.toMillis(expire)
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
          const next = slide ? { fields: entry.fields, expiresAt: now + ttl } : entry
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
          return map.set(id, { fields, expiresAt: now + ttl })
        }))

    const retrieve: SessionStore["retrieve"] = (id) =>
      Effect.flatMap(live(id, true), (entry) =>
        entry === undefined ? Effect.succeedNone : Either.match(Session.decode(id, entry.fields), {
          onLeft: Effect.fail,
          onRight: Effect.succeed
        }))

    const store: SessionStore = {
      backend: "memory",
      expire,
      create: (data = {}, options) =>
        Effect.gen(function*() {
          const id = options?.id ?? Session.makeId()
          const created = yield* Session.encodeNew(id, data, yield* Clock.currentTimeMillis)
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
          // The same version field as in Redis, so that both backends hold the same hash.
          if (!Session.isEmpty(delta)) {
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
    return store
  })
