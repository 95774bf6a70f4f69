/**
 * @since 0.1.0
 */

/**
 * The session value and how its data maps to Redis hash fields.
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

/**
 * The error family: every error of this library carries one `TypeId`
 * (see `isSessionError`), and its name says which layer failed.
 *
 * @since 0.1.0
 */
export {
  isSessionError,
  RedisCommandError,
  RedisConnectionError,
  SessionConfigError,
  SessionDecodeError,
  SessionEncodeError,
  type SessionError,
  SessionSchemaError,
  type SessionStoreError
} from "./SessionError.js"
