/**
 * HTTP, read-mostly: each connection cycles 9 reads and 1 one-field write of
 * its own session (64 connections, 64 sessions), against our server, express
 * (plain and on node-redis's client-side cache), and the same servers with no
 * sessions or with a trivial middleware, to isolate what sessions cost.
 *
 * Every server runs from the start in its own child process; then each round
 * loads every server once, in rotating order, so a burst of load from
 * elsewhere on the machine falls on all of them alike. Figures are the
 * median over rounds, with the lowest and highest round beside them.
 */
import type { Request } from "autocannon"
import { rotate } from "./compare.js"
import { load, login, type RunningServer, startServer } from "./http/client.js"
import { hasSessions, type Mode, modeLabels, modes } from "./http/modes.js"
import type { BenchRedis } from "./redis.js"
import { log, median, seconds } from "./stats.js"

export interface HttpRun {
  readonly requestsPerSec: number
  readonly latencyMeanMs: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly requests: number
  readonly errors: number
  readonly non2xx: number
  /** The server process's CPU time per request (µs), insensitive to other load on the machine. */
  readonly cpuPerRequestUs: number
}

/** Lowest and highest round, for the figures that matter. */
export interface HttpSpread {
  readonly requestsPerSec: readonly [min: number, max: number]
  readonly cpuPerRequestUs: readonly [min: number, max: number]
  readonly latencyP50Ms: readonly [min: number, max: number]
}

/** Every server the loopback workload compares: all the modes there are. */
export const loopbackModes = modes

export type LoopbackMode = typeof loopbackModes[number]

export interface HttpResults {
  readonly connections: number
  readonly durationS: number
  readonly warmupS: number
  readonly rounds: number
  readonly sessions: number
  /** Median over the rounds, by server (each figure on its own). */
  readonly servers: Record<LoopbackMode, HttpRun>
  readonly spread: Record<LoopbackMode, HttpSpread>
  readonly perRound: Record<LoopbackMode, Array<HttpRun>>
}

const connections = 64
// The no-session servers get a cookie header of the same size, so only the session work differs.
export const dummyCookie = `sid=${"x".repeat(80)}`

export const cycle = (cookie: string | undefined): ReadonlyArray<Request> => {
  const headers = { cookie: cookie ?? dummyCookie }
  return [
    ...Array.from({ length: 9 }, () => ({ method: "GET", path: "/read", headers })),
    { method: "POST", path: "/write", headers }
  ]
}

export interface Fleet<M extends Mode> {
  readonly servers: Record<M, RunningServer>
  readonly cookies: Record<M, ReadonlyArray<string>>
  readonly stop: () => Promise<void>
}

/** Starts one child per mode (one at a time, so their start-up does not overlap) and logs in `sessions` times. */
export const startFleet = async <M extends Mode>(
  modes: ReadonlyArray<M>,
  redis: BenchRedis,
  sessions: number
): Promise<Fleet<M>> => {
  const servers = {} as Record<M, RunningServer>
  const cookies = {} as Record<M, ReadonlyArray<string>>
  const stop = async () => {
    await Promise.allSettled(Object.values<RunningServer>(servers).map((s) => s.stop()))
  }
  try {
    for (const mode of modes) {
      servers[mode] = await startServer(mode, redis)
      cookies[mode] = hasSessions(mode) ? await login(servers[mode].port, sessions) : []
    }
  } catch (error) {
    await stop()
    throw error
  }
  return { servers, cookies, stop }
}

const once = async (server: RunningServer, cookies: ReadonlyArray<string>, durationS: number): Promise<HttpRun> => {
  const cpuBefore = await server.cpuUs()
  const r = await load({ port: server.port, connections, durationS, cycle, cookies })
  const cpu = (await server.cpuUs()) - cpuBefore
  const run: HttpRun = {
    requestsPerSec: r.requests.average,
    latencyMeanMs: r.latency.mean,
    latencyP50Ms: r.latency.p50,
    latencyP99Ms: r.latency.p99,
    requests: r.requests.total,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    cpuPerRequestUs: cpu / r.requests.total
  }
  const problems = run.errors + run.non2xx > 0 ? `  (${run.errors} errors, ${run.non2xx} non-2xx!)` : ""
  log(
    `    ${modeLabels[server.mode].padEnd(54)} ${run.requestsPerSec.toFixed(0).padStart(7)} req/s  p50 ${
      run.latencyP50Ms.toFixed(2)
    } ms  p99 ${run.latencyP99Ms.toFixed(2)} ms  server CPU ${run.cpuPerRequestUs.toFixed(1)} µs/req${problems}`
  )
  return run
}

const range = (values: ReadonlyArray<number>): readonly [number, number] => [
  Math.min(...values),
  Math.max(...values)
]

/** Each figure's median over the rounds; counts are summed. */
const medianRun = (runs: ReadonlyArray<HttpRun>): HttpRun => {
  const med = (f: (r: HttpRun) => number) => median(runs.map(f))
  const sum = (f: (r: HttpRun) => number) => runs.reduce((total, r) => total + f(r), 0)
  return {
    requestsPerSec: med((r) => r.requestsPerSec),
    latencyMeanMs: med((r) => r.latencyMeanMs),
    latencyP50Ms: med((r) => r.latencyP50Ms),
    latencyP99Ms: med((r) => r.latencyP99Ms),
    requests: sum((r) => r.requests),
    errors: sum((r) => r.errors),
    non2xx: sum((r) => r.non2xx),
    cpuPerRequestUs: med((r) => r.cpuPerRequestUs)
  }
}

export const runHttpBench = async (redis: BenchRedis): Promise<HttpResults> => {
  const warmupS = seconds(2, 0.5)
  const durationS = seconds(3, 0.5)
  const rounds = 3
  log(
    `\n[2/8] HTTP read-mostly, loopback: 90% reads / 10% one-field writes, ${connections} connections, ${rounds} interleaved rounds × ${durationS} s per server after ${warmupS} s warm-up`
  )
  const fleet = await startFleet(loopbackModes, redis, connections)
  try {
    for (const mode of loopbackModes) {
      await load({
        port: fleet.servers[mode].port,
        connections,
        durationS: warmupS,
        cycle,
        cookies: fleet.cookies[mode]
      })
    }
    const perRound = Object.fromEntries(loopbackModes.map((m) => [m, []])) as unknown as Record<
      LoopbackMode,
      Array<HttpRun>
    >
    for (let round = 0; round < rounds; round++) {
      log(`   round ${round + 1}`)
      for (const mode of rotate(loopbackModes, round)) {
        perRound[mode].push(await once(fleet.servers[mode], fleet.cookies[mode], durationS))
      }
    }
    const servers = Object.fromEntries(loopbackModes.map((m) => [m, medianRun(perRound[m])])) as Record<
      LoopbackMode,
      HttpRun
    >
    const spread = Object.fromEntries(loopbackModes.map((m) => {
      const runs = perRound[m]
      return [m, {
        requestsPerSec: range(runs.map((r) => r.requestsPerSec)),
        cpuPerRequestUs: range(runs.map((r) => r.cpuPerRequestUs)),
        latencyP50Ms: range(runs.map((r) => r.latencyP50Ms))
      }]
    })) as Record<LoopbackMode, HttpSpread>
    return { connections, durationS, warmupS, rounds, sessions: connections, servers, spread, perRound }
  } finally {
    await fleet.stop()
  }
}

/** Server time per request (µs) added by sessions: the difference of 1/throughput with and without. */
export const sessionOverheadUs = (withSessions: HttpRun, without: HttpRun): number =>
  1e6 / withSessions.requestsPerSec - 1e6 / without.requestsPerSec
