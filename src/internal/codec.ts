/**
 * How a session's data maps to the fields of a Redis hash: encoding, deltas,
 * decoding, the metadata fields, and session ids. Both backends store these
 * fields, so they decode, merge and expire sessions alike.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { randomFillSync } from "node:crypto"
import type { Session, SessionData, SessionInfo, Snapshot } from "../Session.js"

export type { Session, SessionData, SessionInfo, Snapshot }
import { SessionDecodeError, SessionEncodeError } from "../SessionError.js"
import * as InternalSchema from "./schema.js"

/**
 * The changes that take a session from its snapshot to its data.
 *
 * @since 0.1.0
 * @category models
 */
export interface Delta {
  /** Hash fields to write, with their encoded values. */
  readonly set: ReadonlyArray<readonly [field: string, value: string]>
  /** Hash fields to remove. */
  readonly remove: ReadonlyArray<string>
  /** The snapshot once the delta is applied. */
  readonly next: Snapshot
}

/**
 * The hash field that marks a live session and holds its creation time. A
 * delta flush never writes it, so a flush that races a destroy or an expiry
 * leaves a hash without it, which readers treat as absent.
 *
 * @since 0.1.0
 * @category constants
 */
export const createdField = "$c"

/**
 * The hash field that counts the data-changing writes of a session. Every
 * flush that changes data bumps it (HINCRBY) in the same transaction; a
 * writer that bypasses this library should do the same, or a cached copy may
 * miss its change (see the near-cache guide).
 *
 * @since 0.1.0
 * @category constants
 */
export const versionField = "$v"

/**
 * The version a session is created at. Not 0: a flush's `HINCRBY` then
 * answers 2 or more on a live session and 1 only when it recreated one that
 * was destroyed or expired meanwhile, so the flush needs no separate
 * liveness check. (A session without the field, written by hand or by an
 * older release, reads as version 0 and gets that check.)
 *
 * @since 0.2.0
 * @category constants
 */
export const firstVersion = 1

/**
 * The hash field that holds the user a session is bound to, if any. Like the
 * other metadata fields it never appears in the session's data.
 *
 * @since 0.1.0
 * @category constants
 */
export const userField = "$u"

/**
 * The hash field that holds a session's own sliding lifetime, in
 * milliseconds, when it has one ("remember me"); without it, the store's
 * `expire` applies. It is metadata like the others: every instance reads it,
 * and it survives restarts.
 *
 * @since 0.2.0
 * @category constants
 */
export const expireField = "$e"

// One call into the CSPRNG per 128 ids (as Node's randomUUID does): a call costs several
// microseconds, more than the rest of a create.
const idBytes = 32
const idPool = Buffer.alloc(idBytes * 128)
let idPoolOffset = idPool.length

/**
 * Makes a new session id: 32 bytes from the operating system's CSPRNG, in
 * base64url (43 characters).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeId = (): string => {
  if (idPoolOffset === idPool.length) {
    randomFillSync(idPool)
    idPoolOffset = 0
  }
  const id = idPool.toString("base64url", idPoolOffset, idPoolOffset + idBytes)
  // Spent bytes are wiped, so that the pool never holds an id that was handed out.
  idPool.fill(0, idPoolOffset, idPoolOffset + idBytes)
  idPoolOffset += idBytes
  return id
}

/**
 * Tells whether a string has the shape of an id made by {@link makeId}.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isId = (u: string): boolean => /^[A-Za-z0-9_-]{43}$/.test(u)

/**
 * Tells whether a string may name a stored session: an id in the alphabet of
 * ours (base64url), from 16 to 128 characters, which covers express-session's
 * (32 characters from uid-safe) and the express-session cookie format. An id
 * becomes part of a Redis key: any other character (`:`, `{`) could name a key
 * that is not a session's, such as a user's index.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isStorableId = (u: string): boolean => /^[A-Za-z0-9_-]{16,128}$/.test(u)

/**
 * What `create` fails with under an id that {@link isStorableId} refuses. The
 * id is not quoted: it was meant to be a bearer token.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unstorableId = (): SessionEncodeError =>
  new SessionEncodeError({
    field: "id",
    detail: "the given session id is not one this store takes: expected 16 to 128 characters of A-Z a-z 0-9 - _"
  })

// User keys that start with "$" get one more "$", so that no user key can
// collide with a metadata field ("$" and one letter).
const toField = (key: string): string => key.charCodeAt(0) === 36 ? "$" + key : key
const toKey = (field: string): string | undefined =>
  field.charCodeAt(0) !== 36 ? field : field.charCodeAt(1) === 36 ? field.slice(1) : undefined

/**
 * A fresh, mutable copy of a snapshot's data, parsed again from the stored
 * fields: cheaper than a structured clone of the frozen values, and exactly
 * what the next reader would get.
 *
 * @internal
 */
export const thaw = (snapshot: Snapshot): Record<string, unknown> => {
  // One JSON.parse of the whole object, not one per field: the stored texts are JSON already.
  // JSON.parse makes "__proto__" an ordinary own key, as setOwn does.
  let text = "{"
  for (const field of Object.keys(snapshot.fields)) {
    const key = toKey(field)
    if (key === undefined) continue
    if (text.length > 1) text += ","
    text += JSON.stringify(key) + ":" + snapshot.fields[field]!
  }
  return JSON.parse(text + "}") as Record<string, unknown>
}

/**
 * Freezes a JSON value and everything inside it.
 *
 * @since 0.1.0
 * @category utils
 */
export const deepFreeze = <A>(value: A): A => {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}

const emptySnapshot: Snapshot = Object.freeze({ fields: Object.freeze({}), data: Object.freeze({}), version: 0 })

/**
 * Reads a stored version: absent (a session no flush has changed yet) is 0.
 * `undefined` when the stored text is not a non-negative integer.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeVersion = (raw: string | null | undefined): number | undefined => {
  if (raw === null || raw === undefined) return 0
  const version = Number(raw)
  return Number.isSafeInteger(version) && version >= 0 && raw.length > 0 ? version : undefined
}

// Session keys come from users and from Redis: "__proto__" must stay an ordinary own key, never
// become a prototype, and an inherited property must never pass for a stored one.
const own = <A>(record: Readonly<Record<string, A>>, key: string): A | undefined =>
  Object.hasOwn(record, key) ? record[key] : undefined
/**
 * A frozen copy of a record that was built key by key. V8 turns an object that
 * gains more than a dozen properties that way into a hash table ("dictionary
 * mode"), and then every spread of it costs microseconds: a session's data and
 * fields are spread on every write, by us and by callers. A spread copy is
 * an ordinary fast object again, and copying fast objects costs nanoseconds.
 */
const frozenFast = <A extends object>(record: A): A => Object.freeze({ ...record })
const setOwn = (record: Record<string, unknown>, key: string, value: unknown): void => {
  if (key === "__proto__") {
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
  } else {
    record[key] = value
  }
}

/**
 * Decodes the fields of a session hash. `None` when the hash has no creation
 * field (absent, or left behind by a stale flush); a `SessionDecodeError` when
 * a field is not JSON. Fields whose stored text is the same as in `previous`
 * keep their already decoded (and frozen) values.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (
  id: string,
  fields: Readonly<Record<string, string>>,
  previous: Snapshot = emptySnapshot
): Either.Either<Option.Option<Session>, SessionDecodeError> => {
  const created = own(fields, createdField)
  if (created === undefined) return Either.right(Option.none())
  const createdAt = Number(created)
  if (!Number.isFinite(createdAt)) {
    return Either.left(new SessionDecodeError({ id, field: createdField, cause: "not a timestamp" }))
  }
  const version = decodeVersion(own(fields, versionField))
  if (version === undefined) {
    return Either.left(new SessionDecodeError({ id, field: versionField, cause: "not a version number" }))
  }
  const user = own(fields, userField)
  const storedExpire = own(fields, expireField)
  const expire = storedExpire === undefined ? undefined : decodeLifetimeMillis(storedExpire)
  if (expire === null) {
    return Either.left(new SessionDecodeError({ id, field: expireField, cause: "not a lifetime" }))
  }
  const data: Record<string, unknown> = {}
  const kept: Record<string, string> = {}
  for (const field of Object.keys(fields)) {
    const key = toKey(field)
    if (key === undefined) continue
    const raw = fields[field]!
    if (own(previous.fields, field) === raw) {
      setOwn(data, key, previous.data[key])
    } else {
      try {
        setOwn(data, key, deepFreeze(JSON.parse(raw)))
      } catch {
        // Not the parser's message: it quotes the stored text, which may be secret.
        return Either.left(new SessionDecodeError({ id, field: key, cause: "not valid JSON" }))
      }
    }
    setOwn(kept, field, raw)
  }
  // Built key by key, so V8 keeps these as hash tables; copying them into fast objects here would cost
  // every miss about 2 µs, while only a write from this snapshot pays for it (see unsafeDiff).
  const snapshot: Snapshot = Object.freeze({
    fields: Object.freeze(kept),
    data: Object.freeze(data),
    version,
    user,
    expire
  })
  return Either.right(Option.some(make(id, createdAt, snapshot)))
}

// A stored lifetime: whole milliseconds, positive, within what the store accepts; null otherwise.
const decodeLifetimeMillis = (raw: string): number | null => {
  const millis = Number(raw)
  return raw.length > 0 && Number.isSafeInteger(millis) && millis > 0 && millis <= InternalSchema.maxLifetimeMillis
    ? millis
    : null
}

/**
 * The frozen session that `snapshot` describes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (id: string, createdAt: number | undefined, snapshot: Snapshot): Session =>
  Object.freeze({
    id,
    data: snapshot.data,
    createdAt,
    user: snapshot.user,
    expire: snapshot.expire === undefined ? undefined : Duration.millis(snapshot.expire),
    snapshot
  })

/**
 * `session`, marked as refreshed by the read that returns it (see
 * `Session.refreshed`): a copy, made only when a read refreshes, so that the
 * cached session and every other read stay unmarked.
 *
 * @since 0.2.0
 * @category constructors
 */
export const refreshed = (session: Session): Session => Object.freeze({ ...session, refreshed: true })

/**
 * The user `session` asks to be bound to: its own `user` property when it has
 * one (`undefined` unbinds), else what it was read with.
 *
 * @since 0.1.0
 * @category utils
 */
export const requestedUser = (session: Session, base: Snapshot): string | undefined =>
  Object.hasOwn(session, "user") ? session.user : base.user

/**
 * `snapshot` bound to `user`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const withUser = (snapshot: Snapshot, user: string | undefined): Snapshot =>
  snapshot.user === user ? snapshot : Object.freeze({ ...snapshot, user })

const decodeLifetimeInput = Schema.decodeUnknownEither(InternalSchema.lifetime("seconds"))

/**
 * A session lifetime as callers give it (a `Duration`, a string such as
 * `"30 days"`, or a number of seconds, as for the `expire` setting), in
 * whole milliseconds; `undefined` stays `undefined` (the store's). Fails with
 * `SessionEncodeError` (field `expire`) when it is not a positive, finite
 * duration within what the store accepts.
 *
 * @since 0.2.0
 * @category encoding
 */
export const lifetimeMillis = (
  input: Duration.DurationInput | undefined,
  id?: string | undefined
): Either.Either<number | undefined, SessionEncodeError> => {
  if (input === undefined) return Either.right(undefined)
  // The common case, a Duration, without the Schema.
  if (Duration.isDuration(input) && Duration.isFinite(input)) {
    const millis = Math.ceil(Duration.toMillis(input))
    if (millis >= 1 && millis <= InternalSchema.maxLifetimeMillis) return Either.right(millis)
  }
  return Either.match(decodeLifetimeInput(input), {
    onLeft: () =>
      Either.left(
        new SessionEncodeError({
          ...(id === undefined ? {} : { id }),
          field: "expire",
          detail:
            `the session's lifetime must be a positive duration (a Duration, a number of seconds, or a string such as "30 days") of at most ${InternalSchema.maxLifetimeMillis} ms`
        })
      ),
    onRight: (duration) => Either.right(Duration.toMillis(duration))
  })
}

/**
 * The lifetime (in milliseconds) `session` asks for: its own `expire`
 * property when it has one (`undefined`: the store's), else what it was read
 * with, as {@link requestedUser} does for the user.
 *
 * @since 0.2.0
 * @category utils
 */
export const requestedExpire = (
  session: Session,
  base: Snapshot
): Either.Either<number | undefined, SessionEncodeError> =>
  Object.hasOwn(session, "expire") ? lifetimeMillis(session.expire, session.id) : Either.right(base.expire)

/**
 * `snapshot` with the lifetime `expire` (milliseconds; `undefined`: the store's).
 *
 * @since 0.2.0
 * @category constructors
 */
export const withExpire = (snapshot: Snapshot, expire: number | undefined): Snapshot =>
  snapshot.expire === expire ? snapshot : Object.freeze({ ...snapshot, expire })

/**
 * `snapshot` at another version: what a session is once a write of ours has
 * been confirmed as the only one since it was read.
 *
 * @since 0.1.0
 * @category constructors
 */
export const withVersion = (snapshot: Snapshot, version: number): Snapshot =>
  Object.freeze({ fields: snapshot.fields, data: snapshot.data, version, user: snapshot.user, expire: snapshot.expire })

/**
 * Encodes a new session's data as hash fields, creation and version fields
 * first. Fails with `SessionEncodeError` when a value has no JSON form (a
 * `bigint`, a cycle, a `toJSON` that throws); the error carries no id, since
 * the session never existed.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeNew = (
  id: string,
  data: SessionData,
  createdAt: number,
  user?: string | undefined,
  expire?: number | undefined
): Either.Either<{
  readonly session: Session
  readonly fields: ReadonlyArray<readonly [string, string]>
}, SessionEncodeError> =>
  Either.map(encodeDelta({ id, data, snapshot: emptySnapshot }, emptySnapshot, false), (delta) => {
    const fields: Array<readonly [string, string]> = [
      [createdField, String(createdAt)],
      [versionField, String(firstVersion)]
    ]
    if (user !== undefined) fields.push([userField, user])
    if (expire !== undefined) fields.push([expireField, String(expire)])
    return {
      session: make(id, createdAt, withVersion(withExpire(withUser(delta.next, user), expire), firstVersion)),
      fields: fields.concat(delta.set)
    }
  })

// Why JSON.stringify threw, in words of our own: its message, or a throwing toJSON's, may quote the
// value, and values may be secret.
const encodeFailure = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : ""
  return cause instanceof TypeError && /BigInt/i.test(message)
    ? "a bigint has no JSON form"
    : cause instanceof TypeError && /circular/i.test(message)
    ? "a cycle has no JSON form"
    : "JSON.stringify threw (a toJSON method or a getter failed)"
}

/**
 * Computes what must be written to take `session.snapshot` (or `base`, for a
 * session built by hand) to `session.data`. Values compare by reference first,
 * so fields a caller did not touch are not even encoded. A value that encodes
 * to nothing (`undefined`, a function) removes its field. Fails with
 * `SessionEncodeError`, naming the field but never quoting the value, when a
 * value has no JSON form (a `bigint`, a cycle, a `toJSON` that throws).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeDelta = (
  session: Session,
  base: Snapshot = session.snapshot ?? emptySnapshot,
  knownId = true
): Either.Either<Delta, SessionEncodeError> => {
  try {
    return Either.right(unsafeDiff(session, base))
  } catch (cause) {
    if (!(cause instanceof FieldEncodeError)) throw cause
    return Either.left(
      new SessionEncodeError({
        ...(knownId ? { id: session.id } : {}),
        field: cause.field,
        detail: encodeFailure(cause.cause)
      })
    )
  }
}

// Carries the failing key out of the loop in `diff`; never escapes this module.
class FieldEncodeError {
  constructor(readonly field: string, readonly cause: unknown) {}
}

const stringify = (key: string, value: unknown): string | undefined => {
  try {
    return JSON.stringify(value) as string | undefined
  } catch (cause) {
    throw new FieldEncodeError(key, cause)
  }
}

/**
 * {@link encodeDelta}, for values known to have a JSON form: throws its
 * `SessionEncodeError` when one has none.
 *
 * @since 0.1.0
 * @category encoding
 */
export const diff = (session: Session, base: Snapshot = session.snapshot ?? emptySnapshot): Delta =>
  Either.getOrThrowWith(encodeDelta(session, base), (error) => error)

// Starts from copies of the base and changes only what changed: a flush usually changes a field or
// two of twenty, and copying a fast object whole costs far less than rebuilding it key by key.
const unsafeDiff = (session: Session, base: Snapshot): Delta => {
  const set: Array<readonly [string, string]> = []
  const remove: Array<string> = []
  // A new session's copies start from the caller's object, which has the keys they will have (and
  // is a fast object, usually): only the values change, so they stay fast objects too.
  const fresh = base === emptySnapshot
  const fields = (fresh ? { ...session.data } : { ...base.fields }) as Record<string, string>
  const data: Record<string, unknown> = fresh ? { ...session.data } : { ...base.data }
  // How many of the base's keys the session still has: fewer means some were removed.
  let present = 0
  // Whether keys were added or deleted, which may have turned the copies into hash tables.
  let reshaped = false
  for (const key of Object.keys(session.data)) {
    const value = session.data[key]
    const stored = Object.hasOwn(base.data, key)
    if (stored) present++
    if (stored && value === base.data[key]) continue
    const field = toField(key)
    const encoded = value === undefined ? undefined : stringify(key, value)
    if (encoded === undefined) {
      // Encodes to nothing: the field goes, if it was stored (or copied from the caller's object).
      if (stored || fresh) {
        if (stored) remove.push(field)
        delete fields[fresh ? key : field]
        delete data[key]
        reshaped = true
      }
      continue
    }
    if (encoded !== own(base.fields, field)) {
      if (fresh ? field !== key : !stored) reshaped = true
      // The copy of the caller's object holds the key, not its field name.
      if (fresh && field !== key) delete fields[key]
      set.push([field, encoded])
      setOwn(fields, field, encoded)
      // A fresh copy, so the caller's own object stays theirs and the snapshot stays frozen.
      setOwn(data, key, deepFreeze(JSON.parse(encoded)))
    }
  }
  if (present < Object.keys(base.data).length) {
    for (const key of Object.keys(base.data)) {
      if (Object.hasOwn(session.data, key)) continue
      const field = toField(key)
      remove.push(field)
      delete fields[field]
      delete data[key]
      reshaped = true
    }
  }
  return {
    set,
    remove,
    next: Object.freeze({
      fields: reshaped ? frozenFast(fields) : Object.freeze(fields),
      data: reshaped ? frozenFast(data) : Object.freeze(data),
      version: base.version,
      user: base.user,
      expire: base.expire
    })
  }
}

/**
 * Tells whether {@link encodeDelta} would write anything, without building the
 * delta: it stops at the first changed field and allocates nothing for the
 * fields left alone. A value with no JSON form counts as a change, so that the
 * write that follows reports it.
 *
 * @since 0.2.0
 * @category encoding
 */
export const hasChanges = (session: Session, base: Snapshot = session.snapshot ?? emptySnapshot): boolean => {
  // The same test per key as unsafeDiff's, stopping at the first change.
  let kept = 0
  for (const key of Object.keys(session.data)) {
    const value = session.data[key]
    const stored = Object.hasOwn(base.data, key)
    if (stored && value === base.data[key]) {
      kept++
      continue
    }
    let encoded: string | undefined
    try {
      encoded = value === undefined ? undefined : stringify(key, value)
    } catch {
      return true
    }
    if (encoded === undefined) {
      // Encodes to nothing: a removal, if the field was stored.
      if (stored) return true
    } else if (encoded !== own(base.fields, toField(key))) {
      return true
    } else {
      kept++
    }
  }
  // Fewer of the base's keys kept than it has: some were removed.
  return kept !== Object.keys(base.data).length
}

/**
 * Tells whether a delta changes nothing.
 *
 * @since 0.1.0
 * @category encoding
 */
export const isEmpty = (delta: Delta): boolean => delta.set.length === 0 && delta.remove.length === 0
