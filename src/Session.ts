/**
 * The session value the store hands out.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"

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
 * What a session was read from: its fields as stored, their decoded values,
 * and the session's version at that moment. `flush` writes only what differs
 * from it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly fields: Readonly<Record<string, string>>
  readonly data: SessionData
  /**
   * How many data-changing writes the session had seen (0 for a session never flushed).
   * A flush whose own bump lands on exactly `version + 1` knows nobody else wrote in between.
   */
  readonly version: number
  /** The user the session was bound to when it was read; `flush` rebinds when `Session.user` differs. */
  readonly user?: string | undefined
  /**
   * The session's own sliding lifetime in milliseconds when it was read (`undefined`: the store's
   * `expire`); `flush` changes it when `Session.expire` differs.
   */
  readonly expire?: number | undefined
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
  /**
   * The user the session belongs to, if any: metadata stored beside the data
   * (never inside it). Every session the store returns has it as an own
   * property; `flush({ ...session, user: "bob" })` rebinds the session and
   * `flush({ ...session, user: undefined })` unbinds it. A hand-built session
   * without the property keeps whatever binding is stored.
   */
  readonly user?: string | undefined
  /**
   * The session's own sliding lifetime ("remember me"), stored beside the
   * data like `user`; `undefined`: the store's `expire`. Every session the
   * store returns has it as an own property; `flush({ ...session, expire:
   * Duration.days(30) })` changes it and `flush({ ...session, expire:
   * undefined })` goes back to the store's. A hand-built session without the
   * property keeps whatever lifetime is stored. `absoluteExpire` still caps it.
   */
  readonly expire?: Duration.Duration | undefined
  /**
   * `true` on the session a `retrieve` returns when that very read refreshed
   * the session's lifetime in the store (which a read does at most once per
   * tenth of the lifetime); absent otherwise. The HTTP middleware sends the
   * cookie again then, so that its `Max-Age` follows the lifetime.
   */
  readonly refreshed?: boolean | undefined
  readonly snapshot?: Snapshot | undefined
}

/**
 * One live session of a user, as `SessionStore.sessionsOf` lists it. All
 * times are epoch milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionInfo {
  readonly id: string
  readonly createdAt: number
  /**
   * When the session expires unless it is used again (its own lifetime, or the store's), or, with
   * `absoluteExpire`, at the latest.
   */
  readonly expiresAt: number
  /**
   * When the session was last used, to within a tenth of its lifetime: the
   * store records activity only when it refreshes the lifetime, which a read
   * does at most once per tenth of it, so reads cost no extra write.
   */
  readonly lastActiveAt: number
}
