/**
 * Latency with Redis a network hop away: Redis behind the delaying proxy,
 * the read-mostly cycle (9 reads, 1 one-field write) at a fixed, moderate
 * request rate over 8 connections per server, for ours, express (plain and on
 * node-redis's client-side cache) and both without sessions. All servers are
 * loaded at once with their requests interleaved, so that noise from the
 * rest of the machine falls on all of them alike. Per-request latency p50
 * and p99, median over rounds.
 */
import { Redis } from "ioredis"
import { performance } from "node:perf_hooks"
import { modeLabels } from "../http/modes.js"
import { cycle, startFleet } from "../httpReadMostly.js"
import type { BenchRedis } from "../redis.js"
import { log, median, percentile, seconds } from "../stats.js"
import { pacedLoadAll } from "./pacedLoad.js"
import { startDelayProxy } from "./proxy.js"

export const remoteModes = [
  "ours",
  "oursNoSession",
  "oursWriteFloor",
  "express",
  "expressNoSession",
  "expressCsc"
] as const

export type RemoteMode = typeof remoteModes[number]

export interface RemoteRun {
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly latencyMeanMs: number
  readonly requests: number
  readonly errors: number
  readonly non2xx: number
  /** Requests that went out after their slot (the previous one on that connection had not answered). */
  readonly late: number
  readonly cpuPerRequestUs: number
}

export interface RemoteResults {
  /** Added by the proxy to every chunk, each way. */
  readonly delayMsEachWay: number
  /** PING round trip, median: straight to Redis and through the proxy (what the servers see). */
  readonly redisRttMs: { readonly direct: number; readonly viaProxy: number }
  readonly connections: number
  /** Requests per second to each server (all are loaded at once). */
  readonly ratePerSec: number
  readonly durationS: number
  readonly warmupS: number
  readonly rounds: number
  /** Median over the rounds, by server. */
  readonly servers: Record<RemoteMode, RemoteRun>
  readonly spread: Record<RemoteMode, {
    readonly latencyP50Ms: readonly [min: number, max: number]
    readonly latencyP99Ms: readonly [min: number, max: number]
  }>
  readonly perRound: Record<RemoteMode, Array<RemoteRun>>
}

const connections = 8

const pingRttMs = async (redis: BenchRedis): Promise<number> => {
  const client = new Redis({ host: redis.host, port: redis.port })
  try {
    await client.ping()
    const samples: Array<number> = []
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now()
      await client.ping()
      samples.push(performance.now() - t0)
    }
    return percentile(Float64Array.from(samples).sort(), 50)
  } finally {
    await client.quit()
  }
}

const range = (values: ReadonlyArray<number>): readonly [number, number] => [
  Math.min(...values),
  Math.max(...values)
]

export const runRemoteLatency = async (redis: BenchRedis): Promise<RemoteResults> => {
  const delayMsEachWay = Number(process.env["BENCH_REMOTE_DELAY_MS"] ?? "0.25")
  // Per server; six servers at once make about 1000 requests per second in all.
  const ratePerSec = Number(process.env["BENCH_REMOTE_RATE"] ?? "170")
  const warmupS = seconds(4, 0.5)
  const durationS = seconds(5, 1)
  const rounds = 3
  log(
    `\n[3/8] HTTP read-mostly, Redis behind a proxy adding ${delayMsEachWay} ms each way: every server at once, interleaved, each over ${connections} connections at ${ratePerSec} req/s; ${rounds} rounds × ${durationS} s`
  )
  const proxy = await startDelayProxy(redis, delayMsEachWay)
  try {
    const redisRttMs = { direct: await pingRttMs(redis), viaProxy: await pingRttMs(proxy) }
    log(
      `    Redis PING round trip, median: ${redisRttMs.direct.toFixed(3)} ms direct, ${
        redisRttMs.viaProxy.toFixed(3)
      } ms through the proxy`
    )
    const fleet = await startFleet(remoteModes, proxy, connections)
    try {
      // Every server at once, requests interleaved: see pacedLoadAll.
      const runAll = async (durationS: number): Promise<Record<RemoteMode, RemoteRun>> => {
        const cpuBefore = await Promise.all(remoteModes.map((m) => fleet.servers[m].cpuUs()))
        const results = await pacedLoadAll(
          remoteModes.map((m) => ({ port: fleet.servers[m].port, cookies: fleet.cookies[m] })),
          { connections, ratePerSec, durationS, cycle }
        )
        const cpuAfter = await Promise.all(remoteModes.map((m) => fleet.servers[m].cpuUs()))
        return Object.fromEntries(remoteModes.map((m, i) => {
          const r = results[i]!
          return [m, { ...r, cpuPerRequestUs: (cpuAfter[i]! - cpuBefore[i]!) / Math.max(1, r.requests) }]
        })) as Record<RemoteMode, RemoteRun>
      }
      // Long enough for every server's hot paths to be compiled: a cold server is several times slower.
      await runAll(warmupS)
      const perRound = Object.fromEntries(remoteModes.map((m) => [m, []])) as unknown as Record<
        RemoteMode,
        Array<RemoteRun>
      >
      for (let round = 0; round < rounds; round++) {
        log(`   round ${round + 1}`)
        const results = await runAll(durationS)
        for (const mode of remoteModes) {
          const r = results[mode]
          perRound[mode].push(r)
          const problems = r.errors + r.non2xx > 0 ? `  (${r.errors} errors, ${r.non2xx} non-2xx!)` : ""
          log(
            `    ${modeLabels[mode].padEnd(54)} p50 ${r.latencyP50Ms.toFixed(3)} ms  p99 ${
              r.latencyP99Ms.toFixed(3)
            } ms  ${r.requests} requests, ${r.late} late  server CPU ${r.cpuPerRequestUs.toFixed(1)} µs/req${problems}`
          )
        }
      }
      const med = (runs: ReadonlyArray<RemoteRun>): RemoteRun => ({
        latencyP50Ms: median(runs.map((r) => r.latencyP50Ms)),
        latencyP99Ms: median(runs.map((r) => r.latencyP99Ms)),
        latencyMeanMs: median(runs.map((r) => r.latencyMeanMs)),
        requests: runs.reduce((a, r) => a + r.requests, 0),
        errors: runs.reduce((a, r) => a + r.errors, 0),
        non2xx: runs.reduce((a, r) => a + r.non2xx, 0),
        late: runs.reduce((a, r) => a + r.late, 0),
        cpuPerRequestUs: median(runs.map((r) => r.cpuPerRequestUs))
      })
      const servers = Object.fromEntries(remoteModes.map((m) => [m, med(perRound[m])])) as Record<
        RemoteMode,
        RemoteRun
      >
      const spread = Object.fromEntries(remoteModes.map((m) => [m, {
        latencyP50Ms: range(perRound[m].map((r) => r.latencyP50Ms)),
        latencyP99Ms: range(perRound[m].map((r) => r.latencyP99Ms))
      }])) as RemoteResults["spread"]
      return {
        delayMsEachWay,
        redisRttMs,
        connections,
        ratePerSec,
        durationS,
        warmupS,
        rounds,
        servers,
        spread,
        perRound
      }
    } finally {
      await fleet.stop()
    }
  } finally {
    await proxy.stop()
  }
}
