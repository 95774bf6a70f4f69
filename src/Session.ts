/**
 * The session value the store hands out.
 *
 * @since 0.1.0
 */

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
  /** When the session expires unless it is used again (or, with `absoluteExpire`, at the latest). */
  readonly expiresAt: number
  /**
   * When the session was last used, to within a tenth of `expire`: the store
   * records activity only when it refreshes the lifetime, which a read does
   * at most once per `expire / 10`, so reads cost no extra write.
   */
  readonly lastActiveAt: number
}
