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
