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
    for (const c of contenders) await c.round(samples.get(c.key)!, durationS / rounds)
  }
  const out: Record<string, Summary> = {}
  for (const c of contenders) {
    const s = samples.get(c.key)!.summary()
    out[c.key] = s
    log(
      `    ${c.label.padEnd(44)} ${fmtOps(s.opsPerSec).padStart(11)}  median ${fmtUs(s.medianUs).padStart(9)}  p99 ${
        fmtUs(s.p99Us).padStart(9)
      }`
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
  op: Effect.Effect<unknown, unknown>
): Promise<void> =>
  Effect.runPromise(Effect.gen(function*() {
    const start = nowUs()
    const end = start + durationS * 1e6
    let t = start
    while (t < end) {
      const t0 = nowUs()
      for (let j = 0; j < batch; j++) yield* op
      t = nowUs()
      samples.values.push((t - t0) / batch)
    }
    samples.totalUs += t - start
  }))
