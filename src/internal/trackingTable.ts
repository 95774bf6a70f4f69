/**
 * Guards per-key tracking against a full tracking table.
 *
 * Redis remembers which client read which key in a table bounded by
 * `tracking-table-max-keys` (default 1,000,000; 0: unbounded). Past the
 * bound it forgets keys, and announces each one it forgets, but not to a
 * NOLOOP client whose own command made it forget (checked on Redis 7.0.15:
 * `trackingInvalidateKeyRaw` skips `server.current_client`). Every command
 * of our data connection can make Redis forget one of our keys silently,
 * after which a foreign write to it would never reach our cache. So while the
 * table is (nearly) full, the cache serves entries for at most
 * `cache.maxStaleness`, as where tracking is refused, and goes back to
 * tracking once the table has room again.
 */
import * as Effect from "effect/Effect"
import type * as Redis from "./redis.js"

/**
 * The table's size and its bound (0: unbounded), as Redis reports them.
 *
 * @internal
 */
export interface Table {
  readonly keys: number
  readonly max: number
}

// Redis's default, assumed where CONFIG GET is refused (managed services often rename it).
const defaultMax = 1_000_000

/**
 * How often the table is checked.
 *
 * @internal
 */
export const checkMillis = 1_000

/**
 * The table as `INFO stats` and `CONFIG GET tracking-table-max-keys` report it; `undefined` when
 * INFO does not say. A refused CONFIG GET (`undefined`) means Redis's default bound.
 *
 * @internal
 */
export const parse = (info: string, config: ReadonlyArray<unknown> | undefined): Table | undefined => {
  const keys = Number(/^tracking_total_keys:(\d+)/m.exec(info)?.[1] ?? Number.NaN)
  if (!Number.isFinite(keys)) return undefined
  const max = Number(config?.[1] ?? defaultMax)
  return { keys, max: Number.isFinite(max) ? max : defaultMax }
}

/**
 * Reads the table's size and bound through the store's connection; `undefined` where INFO is refused.
 *
 * @internal
 */
export const read = (data: Redis.Connection): Effect.Effect<Table | undefined> =>
  Effect.gen(function*() {
    const info = yield* data.run("tracking", "INFO", "stats", (client) => client.info("stats"))
    const config = yield* data.run(
      "tracking",
      "CONFIG GET",
      "tracking-table-max-keys",
      (client) => client.config("GET", "tracking-table-max-keys") as Promise<ReadonlyArray<unknown>>
    ).pipe(Effect.orElseSucceed(() => undefined))
    return parse(info, config)
  }).pipe(Effect.orElseSucceed(() => undefined))

/**
 * Whether Redis may be forgetting tracked keys: within a tenth of the bound.
 *
 * @internal
 */
export const isFull = (table: Table): boolean => table.max > 0 && table.keys >= table.max * 0.9

/**
 * Whether the table has room again: under four fifths of the bound (a gap, so that a table
 * hovering at the edge does not flip the cache back and forth).
 *
 * @internal
 */
export const hasRoom = (table: Table): boolean => table.max === 0 || table.keys < table.max * 0.8

/**
 * The warning for a full table, with what to do about it.
 *
 * @internal
 */
export const warning = (table: Table): string =>
  `effect-session-redis: Redis's tracking table holds ${table.keys} keys of at most ${table.max} ` +
  `(tracking-table-max-keys): Redis is forgetting which sessions instances read, so the near-cache no longer relies ` +
  `on its announcements (entries are served for at most cache.maxStaleness; on a Cluster, that master's slots are ` +
  `not cached) until the table has room again. Raise tracking-table-max-keys above the number of live sessions ` +
  `(see docs/deployment.md), or set it to 0.`
