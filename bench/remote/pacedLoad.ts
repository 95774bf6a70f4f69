/**
 * An open-loop load generator for latency at moderate load: `connections`
 * keep-alive connections, each sending its request cycle at a fixed pace, so
 * the server is never saturated and latency is what one request costs.
 * autocannon's rate limit sends each second's quota in a burst, which
 * measures queueing instead.
 */
import type { Request } from "autocannon"
import * as http from "node:http"
import { performance } from "node:perf_hooks"
import { percentile } from "../stats.js"

export interface PacedOptions {
  readonly port: number
  readonly connections: number
  /** Requests per second over all connections. */
  readonly ratePerSec: number
  readonly durationS: number
  readonly cycle: (cookie: string | undefined) => ReadonlyArray<Request>
  readonly cookies: ReadonlyArray<string>
}

export interface PacedResult {
  readonly requests: number
  readonly errors: number
  readonly non2xx: number
  /** Requests sent later than their slot because the previous one on that connection was still running. */
  readonly late: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly latencyMeanMs: number
}

const send = (agent: http.Agent, port: number, req: Request): Promise<number> =>
  new Promise((resolve, reject) => {
    const r = http.request(
      { host: "127.0.0.1", port, agent, method: req.method ?? "GET", path: req.path ?? "/", headers: req.headers },
      (res) => {
        res.resume()
        res.on("end", () => resolve(res.statusCode ?? 0))
      }
    )
    r.on("error", reject)
    r.end()
  })

const sleepUntil = (t: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, t - performance.now())))

/** One server under {@link pacedLoadAll}: its port and the cookies its connections use. */
export interface PacedTarget {
  readonly port: number
  readonly cookies: ReadonlyArray<string>
}

/** {@link pacedLoad} for one server. */
export const pacedLoad = async (options: PacedOptions): Promise<PacedResult> =>
  (await pacedLoadAll([{ port: options.port, cookies: options.cookies }], options))[0]!

/**
 * Loads several servers at once, each at `ratePerSec` over its own
 * `connections`, with the requests of all of them interleaved evenly in
 * time. Whatever else happens on the machine meanwhile falls on every server
 * alike, so their latencies can be compared even when the machine is not
 * quiet; loading them one after the other cannot promise that.
 */
export const pacedLoadAll = async (
  targets: ReadonlyArray<PacedTarget>,
  options: Omit<PacedOptions, "port" | "cookies">
): Promise<Array<PacedResult>> => {
  const intervalMs = (options.connections * 1000) / options.ratePerSec
  const slots = targets.length * options.connections
  const start = performance.now() + 5
  const end = start + options.durationS * 1000
  const run = async (target: PacedTarget, index: number): Promise<PacedResult> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections })
    const latencies: Array<number> = []
    let errors = 0
    let non2xx = 0
    let late = 0
    const connection = async (i: number) => {
      const requests = options.cycle(
        target.cookies.length === 0 ? undefined : target.cookies[i % target.cookies.length]
      )
      // Every connection of every server gets its own slot within one interval, so requests arrive evenly.
      let next = start + ((i * targets.length + index) * intervalMs) / slots
      for (let k = 0;; k++) {
        await sleepUntil(next)
        const t0 = performance.now()
        if (t0 >= end) break
        try {
          const status = await send(agent, target.port, requests[k % requests.length]!)
          if (status < 200 || status >= 300) non2xx++
          latencies.push(performance.now() - t0)
        } catch {
          errors++
        }
        next += intervalMs
        if (performance.now() > next) {
          late++
          next = performance.now()
        }
      }
    }
    try {
      await Promise.all(Array.from({ length: options.connections }, (_, i) => connection(i)))
    } finally {
      agent.destroy()
    }
    const sorted = Float64Array.from(latencies).sort()
    return {
      requests: latencies.length,
      errors,
      non2xx,
      late,
      latencyP50Ms: percentile(sorted, 50),
      latencyP99Ms: percentile(sorted, 99),
      latencyMeanMs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length)
    }
  }
  return Promise.all(targets.map(run))
}
