/**
 * Server-side sessions for Effect apps, stored in Redis, with an in-process
 * near-cache that stays coherent across app instances. Every public module is
 * re-exported here as a namespace; the errors are exported by name.
 *
 * @since 0.1.0
 */

/**
 * The session value the store hands out.
 *
 * @since 0.1.0
 */
export * as Session from "./Session.js"

/**
 * The @effect/platform middleware and the per-request session service.
 *
 * @since 0.1.0
 */
export * as HttpSession from "./HttpSession.js"

/**
 * The near-cache: its modes, counters and Effect metrics.
 *
 * @since 0.1.0
 */
export * as SessionCache from "./SessionCache.js"

/**
 * The settings Schema, decodable from a plain object or the environment.
 *
 * @since 0.1.0
 */
export * as SessionConfig from "./SessionConfig.js"

/**
 * Signed session cookies: HMAC-SHA256 with a list of secrets.
 *
 * @since 0.1.0
 */
export * as SessionCookie from "./SessionCookie.js"

/**
 * The session store service and its Redis and in-memory layers.
 *
 * @since 0.1.0
 */
export * as SessionStore from "./SessionStore.js"

export {
  /**
   * Tells whether a value is one of this library's errors.
   *
   * @since 0.1.0
   * @category errors
   */
  isSessionError,
  /**
   * Redis refused a command (WRONGTYPE, OOM, NOPERM, ...).
   *
   * @since 0.1.0
   * @category errors
   */
  RedisCommandError,
  /**
   * Redis could not be reached or used; `reason` says why. Retrying later can succeed.
   *
   * @since 0.1.0
   * @category errors
   */
  RedisConnectionError,
  /**
   * A setting of the store or an option of the middleware was rejected; `field` names it.
   *
   * @since 0.1.0
   * @category errors
   */
  SessionConfigError,
  /**
   * A stored session field is not the JSON this library writes.
   *
   * @since 0.1.0
   * @category errors
   */
  SessionDecodeError,
  /**
   * A value has no JSON form (a bigint, a cycle, a throwing toJSON); nothing was written.
   *
   * @since 0.1.0
   * @category errors
   */
  SessionEncodeError,
  /**
   * Every error of this library.
   *
   * @since 0.1.0
   * @category errors
   */
  type SessionError,
  /**
   * A session field does not fit the app's schema (`HttpSession.typed`).
   *
   * @since 0.1.0
   * @category errors
   */
  SessionSchemaError,
  /**
   * Every failure a `SessionStore` operation can report.
   *
   * @since 0.1.0
   * @category errors
   */
  type SessionStoreError
} from "./SessionError.js"
