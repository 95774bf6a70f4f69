/**
 * Where an HTTP server's CPU goes on read-only requests for a known session:
 *
 *   npx tsx bench/profileHttp.ts [--write | --mixed] [--paced] [mode ...]     (default: expressCsc express)
 *
 * Runs each server child under `--cpu-prof`, sends read-only requests for
 * 5 s after a 1 s warm-up, and prints the CPU time per request and the
 * functions that took most of it (self and inclusive time per request, from
 * the profile samples taken during the measured 5 s only). `--paced` measures
 * 10 s at the remote workload's moderate rate instead (8 connections, 200
 * requests per second, open loop), where every request runs on cold caches. The profiles stay
 * in the printed directory for Chrome DevTools. Not part of `npm run bench`.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { load, login, startServer } from "./http/client.js"
import { hasSessions, type Mode, modes } from "./http/modes.js"
import { cycle as readMostly, dummyCookie } from "./httpReadMostly.js"
import { startRedis } from "./redis.js"
import { pacedLoad } from "./remote/pacedLoad.js"
import { log } from "./stats.js"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const frameName = (node: ProfileNode): string => {
  const { functionName, lineNumber, url } = node.callFrame
  const where = url === "" ? "" : ` ${url.split("node_modules/").pop()}:${lineNumber + 1}`
  return `${functionName === "" ? "(anonymous)" : functionName}${where}`
}

/** Self and inclusive µs by function over the samples taken in [fromUs, toUs] (the profile's clock). */
const attribute = (profile: Profile, fromUs: number, toUs: number) => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n] as const))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let t = profile.startTime
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i]!
    if (t < fromUs || t > toUs) return
    const delta = profile.timeDeltas[i]!
    const leaf = frameName(byId.get(id)!)
    self.set(leaf, (self.get(leaf) ?? 0) + delta)
    const seen = new Set<string>()
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const name = frameName(byId.get(n)!)
      if (seen.has(name)) continue
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + delta)
    }
  })
  return { self, inclusive }
}

const top = (m: Map<string, number>, n: number, skip: (name: string) => boolean) =>
  [...m.entries()].filter(([name]) => !skip(name)).sort((a, b) => b[1] - a[1]).slice(0, n)

const main = async () => {
  // `--write`: one-field writes (POST /write) instead of reads; `--mixed`: the read-mostly
  // workload's own cycle (9 reads, 1 write).
  const write = process.argv.includes("--write")
  const mixed = process.argv.includes("--mixed")
  const paced = process.argv.includes("--paced")
  const kind = mixed ? "read-mostly" : write ? "write" : "read-only"
  const args = process.argv.slice(2).filter((a) => !a.startsWith("--"))
  const wanted = (args.length > 0 ? args : ["expressCsc", "express"]) as Array<Mode>
  for (const m of wanted) if (!modes.includes(m)) throw new Error(`unknown mode ${m}; one of ${modes.join(", ")}`)
  const dir = mkdtempSync(join(tmpdir(), "bench-prof-"))
  process.env["BENCH_CPU_PROF"] = dir
  const redis = await startRedis()
  try {
    for (const mode of wanted) {
      const server = await startServer(mode, redis)
      const cookies = hasSessions(mode) ? await login(server.port, 64) : []
      const cycle = mixed ? readMostly : (
        cookie: string | undefined
      ) => [{
        method: write ? "POST" : "GET",
        path: write ? "/write" : "/read",
        headers: { cookie: cookie ?? dummyCookie }
      }]
      await load({ port: server.port, connections: 64, durationS: 1, cycle, cookies })
      const cpuBefore = await server.cpuUs()
      // The profile's timestamps are CLOCK_MONOTONIC µs, as process.hrtime's are.
      const from = Number(process.hrtime.bigint() / 1000n)
      const requests = paced
        ? (await pacedLoad({ port: server.port, connections: 8, ratePerSec: 200, durationS: 10, cycle, cookies }))
          .requests
        : (await load({ port: server.port, connections: 64, durationS: 5, cycle, cookies })).requests.total
      const to = Number(process.hrtime.bigint() / 1000n)
      const cpuPerRequest = ((await server.cpuUs()) - cpuBefore) / requests
      await server.stop()
      const file = readdirSync(dir).find((f) => f.includes(`.${server.pid}.0.`))
      log(
        `\n${mode}: ${requests} ${kind} requests, ${cpuPerRequest.toFixed(1)} µs CPU per request`
      )
      if (file === undefined) {
        log("  (no CPU profile was written)")
        continue
      }
      const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile
      const { inclusive, self } = attribute(profile, from, to)
      const perRequest = (us: number) => `${(us / requests).toFixed(1).padStart(6)} µs`
      log("  self time per request:")
      for (const [name, us] of top(self, 14, (n) => n.startsWith("(idle)"))) log(`    ${perRequest(us)}  ${name}`)
      log("  inclusive time per request (library frames):")
      const library = (n: string) => !/express-session|connect-redis|@redis|cookie-signature|effect|ioredis/.test(n)
      for (const [name, us] of top(inclusive, 14, library)) log(`    ${perRequest(us)}  ${name}`)
    }
    log(`\nprofiles in ${dir}`)
  } finally {
    await redis.stop()
  }
}

main().then(() => process.exit(0), (error) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
