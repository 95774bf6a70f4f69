/**
 * Runs several contenders for one operation in interleaved rounds, so that
 * a burst of load from elsewhere on the machine hits all of them alike.
 */
import * as Effect from "effect/Effect"
import { fmtOps, fmtUs, log, nowUs, Samples, type Summary } from "./stats.js"

export interface Contender {
  readonly key: string
  readonly label: string
  /** Set for contenders timed in batches (sub-microsecond operations). */
  readonly batch?: number
  /** Runs one timed round, adding to `samples`. */
  readonly round: (samples: Samples, durationS: number) => Promise<void>
}

/**
 * Rotates `items` by `round`: in round r the r-th item goes first, so that
 * no contender always runs right after the same neighbour (or the warm-up).
 */
export const rotate = <A>(items: ReadonlyArray<A>, round: number): Array<A> => {
  const k = items.length === 0 ? 0 : round % items.length
  return [...items.slice(k), ...items.slice(0, k)]
}

/**
 * Runs every contender once per round, in rotating order, for `rounds`
 * rounds after one short warm-up round; medians are the median of the rounds'.
 */
export const compare = async (
  title: string,
  contenders: ReadonlyArray<Contender>,
  durationS: number,
  rounds = 3
): Promise<Record<string, Summary>> => {
  log(`  ${title}`)
  for (const c of contenders) await c.round(new Samples(c.batch), Math.min(0.25, durationS / rounds))
  const samples = new Map(contenders.map((c) => [c.key, new Samples(c.batch)] as const))
  for (let r = 0; r < rounds; r++) {
    for (const c of rotate(contenders, r)) {
      const s = samples.get(c.key)!
      s.startRound()
      await c.round(s, durationS / rounds)
    }
  }
  const out: Record<string, Summary> = {}
  for (const c of contenders) {
    const s = samples.get(c.key)!.summary()
    out[c.key] = s
    const spread = s.spreadUs === undefined ? "" : `  rounds ${fmtUs(s.spreadUs[0])}–${fmtUs(s.spreadUs[1])}`
    log(
      `    ${c.label.padEnd(44)} ${fmtOps(s.opsPerSec).padStart(11)}  median ${fmtUs(s.medianUs).padStart(9)}  p99 ${
        fmtUs(s.p99Us).padStart(9)
      }${spread}`
    )
  }
  return out
}

/**
 * Times `op` inside one Effect program, in batches: the per-operation cost
 * of the store as an Effect handler pays it, without a `runPromise` per call.
 */
export const timeEffectBatched = (
  samples: Samples,
  durationS: number,
  batch: number,
  op: Effect.Effect<unknown, unknown>,
  maxBatches = Number.POSITIVE_INFINITY
): Promise<void> =>
  Effect.runPromise(Effect.gen(function*() {
    const start = nowUs()
    const end = start + durationS * 1e6
    let t = start
    for (let n = 0; t < end && n < maxBatches; n++) {
      const t0 = nowUs()
      for (let j = 0; j < batch; j++) yield* op
      t = nowUs()
      samples.values.push((t - t0) / batch)
    }
    samples.totalUs += t - start
  }))
