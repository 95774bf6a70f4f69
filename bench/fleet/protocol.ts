/**
 * What the fleet workload's parent and its instance children say to each
 * other over IPC. Every request gets exactly one reply, in order.
 */

/** The parent's requests. */
export type Request =
  /**
   * Open a store with these `cache` settings, make `sessions` sessions of its own (cached and tracked),
   * then write them `warmUpWrites` times in all, untimed, as the write phase does.
   */
  | {
    readonly type: "open"
    readonly cache: Readonly<Record<string, unknown>>
    readonly sessions: number
    readonly warmUpWrites: number
  }
  /** Start counting CPU time (idle instances). */
  | { readonly type: "start" }
  /** Stop counting and report, once the instance has read what Redis sent it (idle instances). */
  | { readonly type: "stop" }
  /** Run the write phase: `writes` one-field writes over the own sessions, `concurrency` at once (the writer). */
  | { readonly type: "write"; readonly writes: number; readonly concurrency: number }
  /** Close the store (its sessions stay in Redis). */
  | { readonly type: "close" }

/** The cache counters of an instance over a phase. */
export interface CacheCounts {
  readonly hits: number
  readonly misses: number
  /** Entries dropped because Redis announced a change. */
  readonly invalidations: number
  /** Entries held at the end of the phase. */
  readonly size: number
  readonly mode: string
}

/** The children's replies. */
export type Reply =
  /** The child is up and has no store open yet: its first message. */
  | { readonly type: "ready" }
  | { readonly type: "opened" }
  | { readonly type: "started" }
  | { readonly type: "stopped"; readonly cpuUs: number; readonly cache: CacheCounts }
  | { readonly type: "wrote"; readonly cpuUs: number; readonly wallUs: number; readonly cache: CacheCounts }
  | { readonly type: "closed" }
  /** The request failed (a store that rejects its settings, Redis gone): the message says why. */
  | { readonly type: "failed"; readonly message: string }

export type Role = "writer" | "idle"
