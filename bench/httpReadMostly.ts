/**
 * HTTP, read-mostly: each connection cycles 9 reads and 1 one-field write of
 * its own session (64 connections, 64 sessions), against our server and
 * express, and against both with no sessions to isolate the session cost.
 */
import type { Request } from "autocannon"
import { load, login, startServer } from "./http/client.js"
import { type Mode, modeLabels } from "./http/modes.js"
import type { BenchRedis } from "./redis.js"
import { log, quick, seconds } from "./stats.js"

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

export interface HttpResults {
  readonly connections: number
  readonly durationS: number
  readonly warmupS: number
  readonly rounds: number
  readonly sessions: number
  /** Mean of the rounds, by server. */
  readonly servers: Record<Mode, HttpRun>
  readonly perRound: Record<Mode, Array<HttpRun>>
}

const connections = 64
// The no-session servers get a cookie header of the same size, so only the session work differs.
const dummyCookie = `sid=${"x".repeat(80)}`

const cycle = (cookie: string | undefined): ReadonlyArray<Request> => {
  const headers = { cookie: cookie ?? dummyCookie }
  return [
    ...Array.from({ length: 9 }, () => ({ method: "GET", path: "/read", headers })),
    { method: "POST", path: "/write", headers }
  ]
}

const once = async (mode: Mode, redis: BenchRedis, warmupS: number, durationS: number): Promise<HttpRun> => {
  const server = await startServer(mode, redis)
  try {
    const sessions = mode === "ours" || mode === "express"
    const cookies = sessions ? await login(server.port, connections) : []
    await load({ port: server.port, connections, durationS: warmupS, cycle, cookies })
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
      `    ${modeLabels[mode].padEnd(46)} ${run.requestsPerSec.toFixed(0).padStart(7)} req/s  p50 ${
        run.latencyP50Ms.toFixed(2)
      } ms  p99 ${run.latencyP99Ms.toFixed(2)} ms  server CPU ${run.cpuPerRequestUs.toFixed(1)} µs/req${problems}`
    )
    return run
  } finally {
    await server.stop()
  }
}

const mean = (runs: ReadonlyArray<HttpRun>): HttpRun => {
  const avg = (f: (r: HttpRun) => number) => runs.reduce((sum, r) => sum + f(r), 0) / runs.length
  const sum = (f: (r: HttpRun) => number) => runs.reduce((total, r) => total + f(r), 0)
  return {
    requestsPerSec: avg((r) => r.requestsPerSec),
    latencyMeanMs: avg((r) => r.latencyMeanMs),
    latencyP50Ms: avg((r) => r.latencyP50Ms),
    latencyP99Ms: avg((r) => r.latencyP99Ms),
    requests: sum((r) => r.requests),
    errors: sum((r) => r.errors),
    non2xx: sum((r) => r.non2xx),
    cpuPerRequestUs: avg((r) => r.cpuPerRequestUs)
  }
}

export const runHttpBench = async (redis: BenchRedis): Promise<HttpResults> => {
  const warmupS = seconds(2, 1)
  const durationS = seconds(5, 1)
  const rounds = quick ? 1 : 2
  log(
    `\n[2/5] HTTP read-mostly: 90% reads / 10% one-field writes, ${connections} connections, ${rounds} × ${durationS} s per server after ${warmupS} s warm-up`
  )
  const order: ReadonlyArray<Mode> = ["ours", "express", "oursNoSession", "expressNoSession"]
  const perRound = { ours: [], express: [], oursNoSession: [], expressNoSession: [] } as Record<Mode, Array<HttpRun>>
  for (let round = 0; round < rounds; round++) {
    for (const mode of order) perRound[mode].push(await once(mode, redis, warmupS, durationS))
  }
  const servers = Object.fromEntries(order.map((m) => [m, mean(perRound[m])])) as Record<Mode, HttpRun>
  return { connections, durationS, warmupS, rounds, sessions: connections, servers, perRound }
}

/** Server time per request (µs) added by sessions: the difference of 1/throughput with and without. */
export const sessionOverheadUs = (withSessions: HttpRun, without: HttpRun): number =>
  1e6 / withSessions.requestsPerSec - 1e6 / without.requestsPerSec
