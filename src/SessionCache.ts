/**
 * The near-cache as users see it: its modes, its counters and its Effect
 * metrics. Each store reports its own counters as `store.cacheStats`.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

/**
 * How entries stay fresh.
 *
 * - `Tracking`: Redis announces every change, so an entry lives as long as its session.
 * - `Staleness`: no announcements (tracking is off or unavailable), so an entry is served for at most `maxStaleness`.
 * - `Off`: nothing is cached, while tracking is being (re)established or when the cache is disabled.
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = "Tracking" | "Staleness" | "Off"

/**
 * Counters of one cache.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly hits: number
  readonly misses: number
  readonly invalidations: number
  /**
   * Keys Redis announced as changed, whether this instance held them or not. With per-key
   * tracking, Redis announces only keys this instance read; with broadcasting, every write.
   */
  readonly received: number
  readonly clears: number
  readonly size: number
  readonly mode: Mode
  /**
   * Reads and writes in flight whose reply may fill the cache (their tickets). It follows the store's
   * concurrency and returns to 0 when the store is idle, whatever those operations' outcome.
   */
  readonly pending: number
}

/**
 * Process-wide metrics, for exporters (Prometheus, OpenTelemetry). Each
 * store also keeps its own counts: see {@link SessionCache.stats}.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  hits: Metric.counter("session_cache_hits", {
    description: "Session reads served from the near-cache",
    incremental: true
  }),
  misses: Metric.counter("session_cache_misses", { description: "Session reads sent to Redis", incremental: true }),
  invalidations: Metric.counter("session_cache_invalidations", {
    description: "Cached sessions dropped because Redis announced a change",
    incremental: true
  }),
  clears: Metric.counter("session_cache_clears", {
    description: "Whole-cache clears (connection lost, FLUSHDB)",
    incremental: true
  })
} as const
