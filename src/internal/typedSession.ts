/**
 * Typed access to the request's session through a Schema of its fields.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { HttpSession } from "../HttpSession.js"
import { SessionSchemaError, type SessionStoreError } from "../SessionError.js"
import * as Tag from "./httpSessionTag.js"

/**
 * Typed access to the session through a Schema of its fields: reads decode,
 * writes encode. Each field is decoded on its own, so one stale field fails
 * only the reads of that field, with a `SessionSchemaError`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Typed<A, R> {
  /** A field, decoded; `None` when absent (a field with a default decodes to its default). */
  readonly get: <K extends keyof A & string>(
    key: K
  ) => Effect.Effect<
    Option.Option<Exclude<A[K], undefined>>,
    SessionStoreError | SessionSchemaError,
    HttpSession | R
  >
  /** Encodes and sets a field; `undefined` (for an optional field) removes it. */
  readonly set: <K extends keyof A & string>(
    key: K,
    value: A[K]
  ) => Effect.Effect<void, SessionStoreError | SessionSchemaError, HttpSession | R>
  /** Sets a field from its current value, and returns the new value. */
  readonly modify: <K extends keyof A & string>(
    key: K,
    f: (current: Option.Option<Exclude<A[K], undefined>>) => A[K]
  ) => Effect.Effect<A[K], SessionStoreError | SessionSchemaError, HttpSession | R>
  /** Removes a field. */
  readonly unset: <K extends keyof A & string>(key: K) => Effect.Effect<void, SessionStoreError, HttpSession>
  /** Every declared field that is present (or has a default), decoded. Undeclared fields are left out. */
  readonly data: Effect.Effect<Partial<A>, SessionStoreError | SessionSchemaError, HttpSession | R>
}

/**
 * Declares the session's fields with a Schema and returns typed accessors.
 *
 * ```ts
 * const AppSession = HttpSession.typed(Schema.Struct({
 *   visits: Schema.optionalWith(Schema.Number, { default: () => 0 }),
 *   user: Schema.optional(Schema.String)
 * }))
 * const visits = yield* AppSession.modify("visits", (n) => Option.getOrElse(n, () => 0) + 1)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const typed = <Fields extends Schema.Struct.Fields>(
  schema: Schema.Struct<Fields>
): Typed<Schema.Struct.Type<Fields>, Schema.Struct.Context<Fields>> => {
  type A = Schema.Struct.Type<Fields>
  type R = Schema.Struct.Context<Fields>
  interface Codec {
    readonly expected: string
    readonly decode: (u: unknown) => Effect.Effect<Record<string, unknown>, ParseResult.ParseError, R>
    readonly encode: (a: unknown) => Effect.Effect<Record<string, unknown>, ParseResult.ParseError, R>
  }
  const codecs = new Map<string, Codec>()
  const codec = (key: string): Codec => {
    let found = codecs.get(key)
    if (found === undefined) {
      const one = Schema.Struct({ [key]: schema.fields[key]! })
      const decode = Schema.decodeUnknown(one)
      const encode = Schema.encodeUnknown(one)
      found = {
        expected: String(Schema.typeSchema(one).ast),
        decode: (u) => decode(u) as Effect.Effect<Record<string, unknown>, ParseResult.ParseError, R>,
        encode: (a) => encode(a) as Effect.Effect<Record<string, unknown>, ParseResult.ParseError, R>
      }
      codecs.set(key, found)
    }
    return found
  }

  const decodeField = (key: string, stored: Option.Option<unknown>) => {
    const c = codec(key)
    const field = (out: Record<string, unknown>) => Object.hasOwn(out, key) ? Option.some(out[key]) : Option.none()
    return Option.match(stored, {
      // Absent: the field's default if it has one, else None (a required field may be missing in a new session).
      onNone: () => Effect.orElseSucceed(Effect.map(c.decode({}), field), Option.none),
      onSome: (value) =>
        Effect.mapError(
          Effect.map(c.decode({ [key]: value }), field),
          () => new SessionSchemaError({ reason: "Decode", field: key, expected: c.expected })
        )
    })
  }

  const get = <K extends keyof A & string>(key: K) =>
    Effect.flatMap(
      Tag.tag,
      (session) => Effect.flatMap(session.get(key), (stored) => decodeField(key, stored))
    ) as Effect.Effect<
      Option.Option<Exclude<A[K], undefined>>,
      SessionStoreError | SessionSchemaError,
      HttpSession | R
    >

  const set = <K extends keyof A & string>(key: K, value: A[K]) =>
    Effect.flatMap(Tag.tag, (session) =>
      codec(key).encode({ [key]: value }).pipe(
        // The value is left out of the error: it may be secret.
        Effect.mapError(() => new SessionSchemaError({ reason: "Encode", field: key, expected: codec(key).expected })),
        Effect.flatMap((encoded) => session.set(key, encoded[key]))
      ))

  return {
    get,
    set,
    modify: (key, f) =>
      Effect.flatMap(get(key), (current) => {
        const next = f(current)
        return Effect.as(set(key, next), next)
      }),
    unset: (key) => Effect.flatMap(Tag.tag, (session) => session.unset(key)),
    data: Effect.flatMap(Tag.tag, (session) =>
      Effect.flatMap(
        session.data,
        (stored) =>
          Effect.reduce(Object.keys(schema.fields), {} as Record<string, unknown>, (out, key) =>
            Effect.map(
              decodeField(key, Object.hasOwn(stored, key) ? Option.some(stored[key]) : Option.none()),
              (value) => {
                if (Option.isSome(value)) out[key] = value.value
                return out
              }
            ))
      )) as Effect.Effect<Partial<A>, SessionStoreError | SessionSchemaError, HttpSession | R>
  }
}
