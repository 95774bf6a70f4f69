/**
 * A writer that keeps creating sessions through a failover and counts what
 * was acknowledged, what failed and how, so that a test can check that no
 * acknowledged session was lost. With `ESR_HA_REPORT=1` it prints what it
 * saw (recovery time, errors) to stderr; tests never assert on time.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type { SessionStore } from "../../src/index.js"

/** What a writer saw. */
export interface Tally {
  /** Ids whose create was acknowledged. */
  readonly acknowledged: Array<string>
  /** Failures by `_tag` (and reason). */
  readonly errors: Record<string, number>
  /** When the first write failed and when the first write succeeded after it (ms since epoch). */
  firstFailure: number | undefined
  recoveredAt: number | undefined
}

const describe = (error: { readonly _tag: string; readonly message?: string }) =>
  "reason" in error && typeof error.reason === "string"
    ? `${error._tag}(${error.reason})`
    // A refused command: its reply's first word (WRONGTYPE, NOPERM, ...) says which.
    : `${error._tag}(${/refused \S+: (\S+)/.exec(error.message ?? "")?.[1] ?? "?"})`

/**
 * Starts creating sessions on `store` one after another, forever; the fiber is
 * interrupted by the caller. `marker` goes into each session's data.
 */
export const writer = (store: SessionStore.SessionStore, marker: string) =>
  Effect.gen(function*() {
    const tally: Tally = { acknowledged: [], errors: {}, firstFailure: undefined, recoveredAt: undefined }
    let n = 0
    const loop = Effect.forever(
      Effect.matchEffect(Effect.suspend(() => store.create({ marker, n: n++ })), {
        onSuccess: (session) =>
          Effect.sync(() => {
            tally.acknowledged.push(session.id)
            if (tally.firstFailure !== undefined && tally.recoveredAt === undefined) tally.recoveredAt = Date.now()
          }),
        onFailure: (error) =>
          Effect.sync(() => {
            tally.errors[describe(error)] = (tally.errors[describe(error)] ?? 0) + 1
            tally.firstFailure ??= Date.now()
          }).pipe(
            // A failed write returns at once while the connection is known down: do not spin.
            Effect.zipRight(Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5))))
          )
      })
    )
    const fiber = yield* Effect.fork(loop)
    return { tally, stop: Fiber.interrupt(fiber) }
  })

/** Prints a line when `ESR_HA_REPORT=1`. */
export const report = (line: string) =>
  Effect.sync(() => {
    if (process.env.ESR_HA_REPORT === "1") process.stderr.write(`[ha] ${line}\n`)
  })
