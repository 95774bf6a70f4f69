/**
 * `npm run bench`: starts a private redis-server, runs every workload on it,
 * prints a summary, writes bench/results.json and regenerates
 * docs/benchmarks.md and docs/benchmarks.svg.
 *
 * BENCH_QUICK=1 shortens every workload (a smoke run; figures not for comparison, written to bench/results.quick.json only).
 * BENCH_FLEET_MODES (default "keys,broadcast") lists the tracking modes the fleet workload runs; a mode the
 * store does not accept is skipped, and says so.
 * BENCH_CPU_PROF=<dir> makes the HTTP server children write V8 CPU profiles there.
 * BENCH_REMOTE_DELAY_MS (default 0.25) is the delay the proxy adds each way in the remote-latency workload,
 * BENCH_REMOTE_RATE (default 200) its request rate per server (all servers are loaded at once).
 * `tsx bench/index.ts --render [results.json] [outDir]` only regenerates the docs (default: from
 * bench/results.json into docs/). With `--rebuild` as well, it first derives the ratios and targets
 * again from the run's raw figures and writes them back to the results file (after a change to
 * what is derived, not to what is measured).
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { runCommandsPerRequest } from "./commands.js"
import { chartSvg, consoleSummary, markdown, remoteChartSvg } from "./docs.js"
import { runFleet } from "./fleet.js"
import { runHttpBench } from "./httpReadMostly.js"
import { runInvalidation } from "./invalidation.js"
import { runLostUpdates } from "./lostUpdates.js"
import { type BenchRedis, startRedis } from "./redis.js"
import { runRemoteLatency } from "./remote/remoteLatency.js"
import { buildResults, loadLimit, type Results } from "./report.js"
import { fieldCount, jsonBytes } from "./sessionShape.js"
import { log, quick } from "./stats.js"
import { runStoreBench } from "./store.js"
import { runTrackingTable } from "./trackingTable.js"

const root = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url))

const loadAverage = () => Number(os.loadavg()[0]!.toFixed(2))

// Set on SIGINT/SIGTERM: the servers' children die with the process group, which is no failure to report.
let interrupted = false

const main = async () => {
  const started = Date.now()
  const loadBefore = loadAverage()
  let redis: BenchRedis | undefined
  const stop = async () => {
    const r = redis
    redis = undefined
    await r?.stop()
  }
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      interrupted = true
      log(`\n${signal}: stopping redis-server`)
      void stop().finally(() => process.exit(130))
    })
  }
  try {
    redis = await startRedis()
    const redisVersion = execFileSync("redis-server", ["--version"]).toString().match(/v=(\S+)/)?.[1] ?? "unknown"
    log(
      `redis-server ${redisVersion} on ${redis.server}${
        quick ? " (BENCH_QUICK: short smoke run, figures not for comparison)" : ""
      }`
    )
    log(
      `session shape: ${fieldCount} fields, ${jsonBytes} bytes of JSON; ${os.cpus().length} CPUs, load average ${loadBefore}`
    )
    if (loadBefore >= loadLimit) {
      log(`WARNING: load average ${loadBefore} ≥ ${loadLimit}: figures from a loaded machine, not for publishing`)
    }

    const store = await runStoreBench(redis)
    const http = await runHttpBench(redis)
    const remote = await runRemoteLatency(redis)
    const lostUpdates = await runLostUpdates(redis)
    const commands = await runCommandsPerRequest(redis)
    const invalidation = await runInvalidation(redis)
    const fleet = await runFleet(redis, "[7/8] ")
    // On a redis-server of its own: its memory figures must move with nothing else.
    const trackingTable = await runTrackingTable("[8/8] ")

    const loadAfter = loadAverage()
    const cpus = os.cpus()
    const results = buildResults({ store, http, remote, lostUpdates, commands, invalidation, fleet, trackingTable }, {
      command: quick ? "BENCH_QUICK=1 npm run bench" : "npm run bench",
      quick,
      date: new Date().toISOString().slice(0, 10),
      durationS: Math.round((Date.now() - started) / 1000),
      node: process.version.slice(1),
      redis: redisVersion,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model.trim() ?? "unknown CPU",
      loadAverage: { before: loadBefore, after: loadAfter },
      underLoad: loadBefore >= loadLimit,
      sessionFields: fieldCount,
      sessionJsonBytes: jsonBytes
    })
    log(consoleSummary(results))

    if (quick) {
      // A smoke run's figures are not for comparison: never let them replace the published ones.
      writeFileSync(root("bench/results.quick.json"), `${JSON.stringify(results, null, 2)}\n`)
      log(`\nwrote bench/results.quick.json in ${results.meta.durationS} s (docs left as they were)`)
    } else {
      writeFileSync(root("bench/results.json"), `${JSON.stringify(results, null, 2)}\n`)
      writeDocs(results, root("docs"))
      log(`\nwrote bench/results.json, docs/benchmarks.md and its charts in ${results.meta.durationS} s`)
    }
  } finally {
    await stop()
  }
}

const writeDocs = (results: Results, dir: string) => {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, "benchmarks-remote.svg"), remoteChartSvg(results))
  writeFileSync(join(dir, "benchmarks.svg"), chartSvg(results))
  writeFileSync(join(dir, "benchmarks.md"), markdown(results))
}

const render = async () => {
  const [from = root("bench/results.json"), to = root("docs")] = process.argv.slice(
    process.argv.indexOf("--render") + 1
  ).filter((arg) => !arg.startsWith("--"))
  const stored = JSON.parse(readFileSync(from, "utf8")) as Results
  const results = process.argv.includes("--rebuild") ? buildResults(stored.raw, stored.meta) : stored
  if (results !== stored) writeFileSync(from, `${JSON.stringify(results, null, 2)}\n`)
  writeDocs(results, to)
  log(consoleSummary(results))
  log(`\nregenerated benchmarks.md and its charts in ${to} from ${from}`)
}
;(process.argv.includes("--render") ? render() : main()).then(
  () => process.exit(0),
  (error) => {
    if (interrupted) return
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  }
)
