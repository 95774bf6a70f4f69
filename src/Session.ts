/**
 * The session value the store hands out, and how its data maps to the fields
 * of a Redis hash.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { randomBytes } from "node:crypto"
import { SessionDecodeError } from "./SessionError.js"

/**
 * A session's data: JSON values by key. What the store returns is deeply
 * frozen, so that a caller cannot change what the near-cache holds; to
 * change a session, spread it: `{ ...session, data: { ...session.data, n: 1 } }`.
 *
 * @since 0.1.0
 * @category models
 */
export type SessionData = Readonly<Record<string, unknown>>

/**
 * What a session was read from: its fields as stored, and their decoded
 * values. `flush` writes only what differs from it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly fields: Readonly<Record<string, string>>
  readonly data: SessionData
}

/**
 * A session. `snapshot` is an own property so that it survives a spread; a
 * session without one (built by hand) is written whole.
 *
 * @since 0.1.0
 * @category models
 */
export interface Session {
  readonly id: string
  readonly data: SessionData
  /** When the session was created, in epoch milliseconds. */
  readonly createdAt?: number | undefined
  readonly snapshot?: Snapshot | undefined
}

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
 * Makes a new session id: 32 bytes from the operating system's CSPRNG, in
 * base64url (43 characters).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeId = (): string => randomBytes(32).toString("base64url")

/**
 * Tells whether a string has the shape of an id made by {@link makeId}.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isId = (u: string): boolean => /^[A-Za-z0-9_-]{43}$/.test(u)

// User keys that start with "$" get one more "$", so that no user key can
// collide with a metadata field ("$" and one letter).
const toField = (key: string): string => key.charCodeAt(0) === 36 ? "$" + key : key
const toKey = (field: string): string | undefined =>
  field.charCodeAt(0) !== 36 ? field : field.charCodeAt(1) === 36 ? field.slice(1) : undefined

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

const emptySnapshot: Snapshot = Object.freeze({ fields: Object.freeze({}), data: Object.freeze({}) })

// Session keys come from users and from Redis: "__proto__" must stay an ordinary own key, never
// become a prototype, and an inherited property must never pass for a stored one.
const own = <A>(record: Readonly<Record<string, A>>, key: string): A | undefined =>
  Object.hasOwn(record, key) ? record[key] : undefined
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
  const snapshot: Snapshot = Object.freeze({ fields: Object.freeze(kept), data: Object.freeze(data) })
  return Either.right(Option.some(Object.freeze({ id, data: snapshot.data, createdAt, snapshot })))
}

/**
 * Encodes a new session's data as hash fields, creation field first.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeNew = (id: string, data: SessionData, createdAt: number): {
  readonly session: Session
  readonly fields: ReadonlyArray<readonly [string, string]>
} => {
  const delta = diff({ id, data, snapshot: emptySnapshot })
  return {
    session: Object.freeze({ id, data: delta.next.data, createdAt, snapshot: delta.next }),
    fields: [[createdField, String(createdAt)], ...delta.set]
  }
}

/**
 * Computes what must be written to take `session.snapshot` (or `base`, for a
 * session built by hand) to `session.data`. Values compare by reference first,
 * so fields a caller did not touch are not even encoded. A value that encodes
 * to nothing (`undefined`, a function) removes its field.
 *
 * @since 0.1.0
 * @category encoding
 */
export const diff = (session: Session, base: Snapshot = session.snapshot ?? emptySnapshot): Delta => {
  const set: Array<readonly [string, string]> = []
  const remove: Array<string> = []
  const fields: Record<string, string> = { ...base.fields }
  const data: Record<string, unknown> = {}
  for (const key of Object.keys(session.data)) {
    const value = session.data[key]
    const field = toField(key)
    const old = own(base.fields, field)
    if (old !== undefined && value === base.data[key]) {
      setOwn(data, key, value)
      continue
    }
    const encoded = value === undefined ? undefined : JSON.stringify(value) as string | undefined
    if (encoded === undefined) continue
    if (encoded !== old) {
      set.push([field, encoded])
      setOwn(fields, field, encoded)
      // A fresh copy, so the caller's own object stays theirs and the snapshot stays frozen.
      setOwn(data, key, deepFreeze(JSON.parse(encoded)))
    } else {
      setOwn(data, key, base.data[key])
    }
  }
  for (const field of Object.keys(base.fields)) {
    const key = toKey(field)
    if (key !== undefined && !Object.hasOwn(data, key)) {
      remove.push(field)
      delete fields[field]
    }
  }
  return { set, remove, next: Object.freeze({ fields: Object.freeze(fields), data: Object.freeze(data) }) }
}

/**
 * Tells whether a delta changes nothing.
 *
 * @since 0.1.0
 * @category encoding
 */
export const isEmpty = (delta: Delta): boolean => delta.set.length === 0 && delta.remove.length === 0
