/**
 * The errors of typed session data.
 */
import * as Schema from "effect/Schema"

/**
 * A stored session field does not decode with the app's schema (see
 * {@link typed}): it was written by an older version of the app, or by hand.
 * The field is named; the stored value is not kept, since it may be secret.
 *
 * @since 0.1.0
 * @category errors
 */
export class HttpSessionDecodeError extends Schema.TaggedError<HttpSessionDecodeError>(
  "effect-session-redis/HttpSessionDecodeError"
)("HttpSessionDecodeError", {
  field: Schema.String,
  expected: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Session field "${this.field}" does not decode as ${this.expected}`
  }
}

/**
 * A value could not be stored in the session: it failed the app's schema
 * (see {@link typed}), or it has no JSON form (a `bigint`, a cycle).
 *
 * @since 0.1.0
 * @category errors
 */
export class HttpSessionEncodeError extends Schema.TaggedError<HttpSessionEncodeError>(
  "effect-session-redis/HttpSessionEncodeError"
)("HttpSessionEncodeError", {
  field: Schema.String,
  detail: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Session field "${this.field}" could not be stored: ${this.detail}`
  }
}
