/**
 * Every error of this library: one family, one `TypeId`. The name says which
 * layer failed: `Redis…` the connection or a command, `Session{De,En}code…`
 * the stored JSON, `SessionSchemaError` the app's schema of the session's
 * fields (`HttpSession.typed`), `SessionConfigError` a setting or option.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The id under which every error of this library can be recognised.
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-session-redis/SessionError")

/**
 * The type of {@link TypeId}.
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Why Redis could not be reached or used.
 *
 * - `Refused`: nothing listens at the address.
 * - `Closed`: the connection was lost or is reconnecting.
 * - `Timeout`: the connect, the command or the socket took longer than its bound.
 * - `Authentication`: the password or user was rejected (WRONGPASS, NOAUTH).
 * - `Tls`: the TLS handshake failed: the server's certificate is not trusted by `tls.ca` (or the
 *   system's CAs), its name does not match `tls.servername`, or the server refused our client certificate.
 * - `Replication`: the write reached the master, but `WAIT` confirmed fewer replicas than
 *   `waitReplicas` within `waitTimeout`. The write may be visible to readers now and may or may not
 *   survive a failover; see docs/deployment.md.
 * - `Cluster`: Redis Cluster cannot serve the key now: the slot has no reachable master
 *   (CLUSTERDOWN, a failover under way) or the slot map could not be refreshed from any node.
 * - `Unknown`: any other transport failure.
 *
 * @since 0.1.0
 * @category errors
 */
export const ConnectionReason = Schema.Literal(
  "Refused",
  "Closed",
  "Timeout",
  "Authentication",
  "Tls",
  "Replication",
  "Cluster",
  "Unknown"
)

/**
 * Why Redis could not be reached or used; see the schema of the same name.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectionReason = typeof ConnectionReason.Type

/**
 * Redis could not be reached, or the connection could not be used.
 * Retrying later can succeed: the connection reconnects by itself. While the
 * store knows Redis is down, it fails this way at once, without waiting for
 * the command timeout. `cause` keeps only the underlying failure's name,
 * message and code, with any password removed.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisConnectionError extends Schema.TaggedError<RedisConnectionError>(
  "effect-session-redis/RedisConnectionError"
)("RedisConnectionError", {
  reason: ConnectionReason,
  method: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  /**
   * Marks the error as one of this library's (see {@link isSessionError}).
   *
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * What went wrong, without secrets or session values.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `${this.method}: Redis connection failed (${this.reason})${authenticationHint(this.cause)}${
      describeCause(this.cause)
    }`
  }
}

/**
 * Redis answered a command with an error reply (WRONGTYPE, OOM, NOPERM, ...).
 * The connection is fine; the command itself was refused. `cause` keeps only
 * the reply's name, message and code, never the command's arguments.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisCommandError extends Schema.TaggedError<RedisCommandError>(
  "effect-session-redis/RedisCommandError"
)("RedisCommandError", {
  method: Schema.String,
  command: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  /**
   * Marks the error as one of this library's (see {@link isSessionError}).
   *
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * What went wrong, without secrets or session values.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `${this.method}: Redis refused ${this.command}${describeCause(this.cause)}`
  }
}

// What an error keeps of a session id: its first six characters and "…", as debug lines show it.
// A session id is a bearer token, and errors are logged. Idempotent, so that an error decoded or
// copied keeps the same text.
const maskId = (id: string): string => id.length === 7 && id.endsWith("…") ? id : `${id.slice(0, 6)}…`

/**
 * A stored session could not be decoded: a field holds something that is not
 * the JSON this library writes. The field name is kept, and of the session id
 * only its first six characters (`id` is `"AbCdEf…"`, as debug lines show it:
 * the id is a bearer token); the value is not, because session values may be
 * secret.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionDecodeError extends Schema.TaggedError<SessionDecodeError>(
  "effect-session-redis/SessionDecodeError"
)("SessionDecodeError", {
  id: Schema.String,
  field: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  constructor(
    props: { readonly id: string; readonly field: string; readonly cause?: unknown },
    options?: Schema.MakeOptions
  ) {
    super({ ...props, id: maskId(props.id) }, options)
  }

  /**
   * Marks the error as one of this library's (see {@link isSessionError}).
   *
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * What went wrong, without secrets or session values.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `Session field "${this.field}" could not be decoded${describeCause(this.cause)}`
  }
}

/**
 * A setting of the store, or an option of the middleware, was rejected.
 * `field` is its path, such as `"database"` or `"cache.capacity"`; `of` says
 * which (`"setting"` of `SessionConfig`, `"option"` of `HttpSession`). The
 * message says what was expected, and never repeats a password, a cookie
 * secret or the credentials of a url.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionConfigError extends Schema.TaggedError<SessionConfigError>(
  "effect-session-redis/SessionConfigError"
)("SessionConfigError", {
  field: Schema.String,
  detail: Schema.String,
  of: Schema.optionalWith(Schema.Literal("setting", "option"), { default: () => "setting" as const })
}) {
  /**
   * Marks the error as one of this library's (see {@link isSessionError}).
   *
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * What went wrong, without secrets or session values.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid ${this.of === "option" ? "HttpSession option" : "session setting"} "${this.field}": ${this.detail}`
  }
}

/**
 * A session field does not fit the app's schema (see `HttpSession.typed`):
 * with `reason` `"Decode"`, a stored value does not decode (written by an
 * older version of the app, or by hand); with `"Encode"`, a value the app
 * tried to store fails the schema. The field is named; the value is not kept,
 * since it may be secret.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionSchemaError extends Schema.TaggedError<SessionSchemaError>(
  "effect-session-redis/SessionSchemaError"
)("SessionSchemaError", {
  reason: Schema.Literal("Decode", "Encode"),
  field: Schema.String,
  expected: Schema.String
}) {
  /**
   * Marks the error as one of this library's (see {@link isSessionError}).
   *
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * What went wrong, without secrets or session values.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return this.reason === "Decode"
      ? `Session field "${this.field}" does not decode as ${this.expected}`
      : `Session field "${this.field}" cannot be stored: expected ${this.expected}`
  }
}

/**
 * Every failure a `SessionStore` operation can report.
 *
 * @since 0.1.0
 * @category errors
 */
export type SessionStoreError =
  | RedisConnectionError
  | RedisCommandError
  | SessionDecodeError
  | SessionEncodeError

/**
 * Every error of this library.
 *
 * @since 0.1.0
 * @category errors
 */
export type SessionError = SessionStoreError | SessionConfigError | SessionSchemaError

/**
 * Tells whether a value is one of this library's errors.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isSessionError = (u: unknown): u is SessionError => typeof u === "object" && u !== null && TypeId in u

// What to do about a refused login, before Redis's own wording (which speaks of HELLO and AUTH).
const authenticationHint = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : ""
  return /^NOAUTH\b/.test(message)
    ? ": the server requires a password: set `password` (and `username` for an ACL user)"
    : /^WRONGPASS\b/.test(message)
    ? ": the server rejected the username or password: check `password` (and `username` for an ACL user)"
    : ""
}

const describeCause = (cause: unknown): string =>
  cause instanceof Error ? `: ${cause.message}` : typeof cause === "string" ? `: ${cause}` : ""

/**
 * A value could not be written: it has no JSON form (a `bigint`, a cycle, a
 * `toJSON` that throws). Nothing was written. The field name is kept, and of
 * the session id (when the session exists) only its first six characters, as
 * in {@link SessionDecodeError}; the value is not, because session values may
 * be secret.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionEncodeError extends Schema.TaggedError<SessionEncodeError>(
  "effect-session-redis/SessionEncodeError"
)("SessionEncodeError", {
  id: Schema.optional(Schema.String),
  field: Schema.String,
  detail: Schema.String
}) {
  constructor(
    props: { readonly id?: string | undefined; readonly field: string; readonly detail: string },
    options?: Schema.MakeOptions
  ) {
    super(props.id === undefined ? props : { ...props, id: maskId(props.id) }, options)
  }

  /**
   * Marks the error as one of this library's (see {@link isSessionError}).
   *
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * What went wrong, without secrets or session values.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `Session field "${this.field}" could not be encoded: ${this.detail}`
  }
}
