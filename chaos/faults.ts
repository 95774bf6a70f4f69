/**
 * The faults, done to the one redis-server the app instances share: SIGKILL
 * and restart on the same port (the AOF replays), SIGSTOP and SIGCONT, and
 * CLIENT KILL storms at the apps' data connections and at their RESP2
 * subscriber connections (the near-cache's invalidation channel).
 */
import type { Redis } from "ioredis"
import type { RedisServer } from "../test/support/RedisServer.js"

export type FaultKind =
  | "kill -9 + restart"
  | "SIGSTOP / SIGCONT"
  | "CLIENT KILL normal"
  | "CLIENT KILL pubsub"
  | "storm"

export interface Fault {
  readonly kind: FaultKind
  /** What exactly, e.g. how long Redis was down. */
  readonly detail: string
  /** Offset from the start of the load, ms. */
  readonly startedAt: number
  /** When the fault was over (Redis answering again, or the kill sent), epoch ms. */
  endedAt: number
  /** Connections killed, for CLIENT KILL. */
  killed: number
}

export interface PlannedFault {
  /** When, from the start of the load. */
  readonly atMs: number
  readonly kind: FaultKind
  /** Down time or freeze time, for the first two kinds. */
  readonly ms?: number
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const clientKill = async (control: Redis, type: "normal" | "pubsub"): Promise<number> => {
  // SKIPME yes (the default) spares the control connection itself.
  const killed = await control.call("CLIENT", "KILL", "TYPE", type)
  return Number(killed)
}

/** Runs one fault to its end; `startedAt` is set by the caller's clock. */
export const run = async (server: RedisServer, control: Redis, planned: PlannedFault): Promise<Fault> => {
  const fault: Fault = {
    kind: planned.kind,
    detail: "",
    startedAt: Date.now(),
    endedAt: 0,
    killed: 0
  }
  const set = (detail: string) => Object.assign(fault, { detail })
  switch (planned.kind) {
    case "kill -9 + restart": {
      await server.kill()
      await sleep(planned.ms ?? 1000)
      await server.restart()
      set(`down ${planned.ms ?? 1000} ms, then restarted on the same port (AOF replayed)`)
      break
    }
    case "SIGSTOP / SIGCONT": {
      server.freeze()
      await sleep(planned.ms ?? 1000)
      server.thaw()
      set(`frozen ${planned.ms ?? 1000} ms`)
      break
    }
    case "CLIENT KILL normal": {
      fault.killed = await clientKill(control, "normal")
      set("CLIENT KILL TYPE normal")
      break
    }
    case "CLIENT KILL pubsub": {
      fault.killed = await clientKill(control, "pubsub")
      set("CLIENT KILL TYPE pubsub")
      break
    }
    case "storm": {
      // Each kill lands while the apps are still reconnecting and redoing their tracking setup.
      for (let i = 0; i < 6; i++) {
        fault.killed += await clientKill(control, i % 2 === 0 ? "normal" : "pubsub")
        await sleep(150)
      }
      set("6 × CLIENT KILL, normal and pubsub alternately, 150 ms apart")
      break
    }
  }
  fault.endedAt = Date.now()
  return fault
}

/** The full run's schedule: each fault kind more than once, spaced wider than the latency bound. */
export const fullPlan: ReadonlyArray<PlannedFault> = [
  { atMs: 8_000, kind: "kill -9 + restart", ms: 1_500 },
  { atMs: 18_000, kind: "CLIENT KILL pubsub" },
  { atMs: 26_000, kind: "SIGSTOP / SIGCONT", ms: 1_000 },
  { atMs: 35_000, kind: "CLIENT KILL normal" },
  { atMs: 43_000, kind: "storm" },
  { atMs: 53_000, kind: "SIGSTOP / SIGCONT", ms: 3_000 },
  { atMs: 65_000, kind: "kill -9 + restart", ms: 300 },
  { atMs: 74_000, kind: "CLIENT KILL pubsub" },
  { atMs: 82_000, kind: "kill -9 + restart", ms: 4_000 },
  { atMs: 95_000, kind: "SIGSTOP / SIGCONT", ms: 2_000 },
  { atMs: 105_000, kind: "storm" },
  { atMs: 115_000, kind: "CLIENT KILL normal" },
  { atMs: 123_000, kind: "SIGSTOP / SIGCONT", ms: 6_000 },
  { atMs: 137_000, kind: "kill -9 + restart", ms: 1_000 }
]

/** The quick run's schedule: every kind once. */
export const quickPlan: ReadonlyArray<PlannedFault> = [
  { atMs: 3_000, kind: "kill -9 + restart", ms: 1_500 },
  { atMs: 9_000, kind: "CLIENT KILL pubsub" },
  { atMs: 13_000, kind: "SIGSTOP / SIGCONT", ms: 2_500 },
  { atMs: 20_000, kind: "CLIENT KILL normal" },
  { atMs: 24_000, kind: "storm" }
]
