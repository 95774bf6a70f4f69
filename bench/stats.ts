/**
 * Timing helpers: sample collection, percentiles, and the summary every
 * store-level row reports (ops/s, median, p99).
 */
import { performance } from "node:perf_hooks"

export interface Summary {
  readonly ops: number
  /** Operations per second, one operation at a time. */
  readonly opsPerSec: number
  /** Latency in microseconds. */
  readonly medianUs: number
  readonly p99Us: number
  /** Per-op latency measured in batches (for sub-microsecond operations). */
  readonly batched?: number
  /** Each interleaved round's median (µs); `medianUs` is the median of these when there are rounds. */
  readonly roundMediansUs?: ReadonlyArray<number>
  /** Lowest and highest round median (µs): how much the rounds disagree. */
  readonly spreadUs?: readonly [min: number, max: number]
}

export const quick = process.env["BENCH_QUICK"] === "1"

/** Scales a full-run duration down for `BENCH_QUICK=1`. */
export const seconds = (full: number, quickRun = full / 5): number => (quick ? quickRun : full)

export const percentile = (sorted: ArrayLike<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}

export const summarize = (samplesUs: ReadonlyArray<number>, totalUs: number, batched?: number): Summary => {
  const sorted = Float64Array.from(samplesUs).sort()
  const ops = samplesUs.length * (batched ?? 1)
  return {
    ops,
    opsPerSec: ops / (totalUs / 1e6),
    medianUs: percentile(sorted, 50),
    p99Us: percentile(sorted, 99),
    ...(batched === undefined ? {} : { batched })
  }
}

/** The median of a few numbers (mean of the middle two for an even count). */
export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Collects the samples of one measurement, round by round. */
export class Samples {
  readonly values: Array<number> = []
  totalUs = 0
  /** Where each round's samples start in `values`. */
  private readonly roundStarts: Array<number> = []
  constructor(readonly batched?: number) {}
  /** Marks the start of an interleaved round. */
  startRound(): void {
    this.roundStarts.push(this.values.length)
  }
  /**
   * Throughput and p99 over all samples; the median is the median of the rounds' medians, so one
   * round disturbed by other load on the machine moves it little.
   */
  summary(): Summary {
    const all = summarize(this.values, this.totalUs, this.batched)
    if (this.roundStarts.length < 2) return all
    const medians = this.roundStarts.map((start, i) => {
      const end = this.roundStarts[i + 1] ?? this.values.length
      return percentile(Float64Array.from(this.values.slice(start, end)).sort(), 50)
    })
    return {
      ...all,
      medianUs: median(medians),
      roundMediansUs: medians,
      spreadUs: [Math.min(...medians), Math.max(...medians)]
    }
  }
}

const now = () => performance.now() * 1000

/**
 * Times `op` one call at a time for `durationS` seconds or `maxOps` calls.
 * Callers warm up by running a round first and discarding it.
 */
export const timeAsync = async (
  samples: Samples,
  durationS: number,
  op: (i: number) => Promise<unknown>,
  maxOps = Number.POSITIVE_INFINITY
): Promise<void> => {
  const start = now()
  const end = start + durationS * 1e6
  let t = start
  for (let i = 0; t < end && i < maxOps; i++) {
    const t0 = now()
    await op(i)
    t = now()
    samples.values.push(t - t0)
  }
  samples.totalUs += t - start
}

/** Times a synchronous operation in batches, since one call is too short for the clock. */
export const timeSyncBatched = (
  samples: Samples,
  durationS: number,
  batch: number,
  op: (i: number) => unknown
): unknown => {
  let sink: unknown
  const start = now()
  const end = start + durationS * 1e6
  let t = start
  for (let i = 0; t < end;) {
    const t0 = now()
    for (let j = 0; j < batch; j++, i++) sink = op(i)
    t = now()
    samples.values.push((t - t0) / batch)
  }
  samples.totalUs += t - start
  return sink
}

export const nowUs = now

export const fmtUs = (us: number): string =>
  !Number.isFinite(us)
    ? "n/a"
    : us < 1
    ? `${(us * 1000).toFixed(0)} ns`
    : us < 1000
    ? `${us.toFixed(us < 10 ? 2 : 1)} µs`
    : `${(us / 1000).toFixed(2)} ms`

export const fmtOps = (ops: number): string =>
  !Number.isFinite(ops)
    ? "n/a"
    : ops >= 1e6
    ? `${(ops / 1e6).toFixed(2)} M/s`
    : ops >= 1e3
    ? `${(ops / 1e3).toFixed(1)} k/s`
    : `${ops.toFixed(0)} /s`

export const log = (line: string): void => {
  process.stdout.write(`${line}\n`)
}
