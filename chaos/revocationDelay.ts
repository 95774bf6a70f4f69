/**
 * `npx tsx chaos/revocationDelay.ts`: how long "sign out everywhere" on one
 * instance takes to reach another instance's near-cache, idle and under load.
 *
 * Two app instances (test/support/appServer.ts, separate processes) on a
 * private redis-server. Per trial, a user logs in on A, and B reads (and so
 * caches) the session; then A answers `POST /logout-everywhere`, and at once
 * 80 requests with the revoked cookie go to B together, then more, one after
 * the other, until B answers without the user. A probe that B answers with the
 * session was served from its near-cache before the invalidation reached it:
 * the latest such answer, after A's, bounds the delivery time from above.
 *
 * - idle: nothing else runs;
 * - under load: 100 other clients keep `GET /whoami` (a read of their own
 *   session, a near-cache hit) in flight on B throughout;
 * - hammered: the 100 clients read the revoked session itself (a stolen cookie
 *   in use while its owner signs out everywhere), and each of their requests
 *   sent after A's answer is a probe.
 *
 * Prints JSON; docs/http.md reports the figures. REVOCATION_TRIALS (default
 * 40) trials per condition; REVOCATION_CLIENTS (default 100) clients;
 * REVOCATION_BURST (default 80) probes sent together.
 */
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as os from "node:os"
import * as AppProcess from "../test/support/AppProcess.js"
import * as RedisServer from "../test/support/RedisServer.js"
import { closeAgents, type Reply, request } from "./http.js"

const trials = Number(process.env["REVOCATION_TRIALS"] ?? 40)
const clients = Number(process.env["REVOCATION_CLIENTS"] ?? 100)
const burst = Number(process.env["REVOCATION_BURST"] ?? 80)
const timeoutMs = 20_000
const log = (line: string) => process.stderr.write(`${line}\n`)

const userOf = (reply: Reply): string | null | undefined => {
  try {
    return (JSON.parse(reply.body) as { user?: string | null }).user
  } catch {
    return undefined
  }
}

const login = async (port: number, name: string, pool: string): Promise<string> => {
  const reply = await request(port, { method: "POST", path: `/login?user=${name}`, timeoutMs, pool })
  if (reply.status !== 200 || typeof reply.sid !== "string") throw new Error(`login answered ${reply.status}`)
  return `sid=${reply.sid}`
}

const whoami = (port: number, cookie: string, pool: string) =>
  request(port, { method: "GET", path: "/whoami", cookie, timeoutMs, pool })

const revoke = async (port: number, cookie: string): Promise<number> => {
  const reply = await request(port, { method: "POST", path: "/logout-everywhere", cookie, timeoutMs, pool: "probe" })
  if (reply.status !== 200) throw new Error(`logout-everywhere answered ${reply.status}`)
  return performance.now()
}

interface Trial {
  /** Probes sent after A had answered. */
  readonly probes: number
  /** Of them, the ones B answered with the session. */
  readonly staleProbes: number
  /** From A's answer to B's latest answer with the session (0: none): the delivery took at most this. */
  readonly staleUntilMs: number
}

/** Counts the answers to probes sent after `answeredAt()`; `stale` is whether B still served the session. */
const tally = () => {
  let answeredAt: number | undefined = undefined
  const trial = { probes: 0, staleProbes: 0, staleUntilMs: 0 }
  return {
    trial,
    revokedAt: (at: number) => (answeredAt = at),
    /** Records one answer; true once B no longer serves the session. */
    record: (sentAt: number, stale: boolean): boolean => {
      if (answeredAt === undefined || sentAt < answeredAt) return false
      trial.probes++
      if (!stale) return true
      trial.staleProbes++
      trial.staleUntilMs = Math.max(trial.staleUntilMs, performance.now() - answeredAt)
      if (trial.staleUntilMs > 10_000) throw new Error("B still serves a session revoked 10 s ago")
      return false
    }
  }
}

const probed = async (a: number, b: number, n: number, tag: string): Promise<Trial> => {
  const name = `victim-${tag}-${n}`
  const cookie = await login(a, name, "probe")
  // B reads the session, and keeps it in its near-cache.
  for (let i = 0; i < 2; i++) {
    if (userOf(await whoami(b, cookie, "probe")) !== name) throw new Error("B did not serve the session")
  }
  const count = tally()
  count.revokedAt(await revoke(a, cookie))
  const probe = async () => {
    const sentAt = performance.now()
    return count.record(sentAt, userOf(await whoami(b, cookie, "probe")) === name)
  }
  const answers = await Promise.all(Array.from({ length: burst }, probe))
  if (!answers.every((revoked) => revoked)) { while (!(await probe())); }
  return count.trial
}

const hammered = async (a: number, b: number, n: number): Promise<Trial> => {
  const name = `hammered-${n}`
  const cookie = await login(a, name, "probe")
  const count = tally()
  let done = false
  const client = async () => {
    let quietSince: number | undefined
    while (!done) {
      const sentAt = performance.now()
      const revoked = count.record(sentAt, userOf(await whoami(b, cookie, "load")) === name)
      if (!revoked) quietSince = undefined
      else if (performance.now() - (quietSince ??= performance.now()) > 200) done = true
    }
  }
  const running = Promise.all(Array.from({ length: clients }, client))
  // Let the load build up, then revoke.
  await new Promise((resolve) => setTimeout(resolve, 300))
  count.revokedAt(await revoke(a, cookie))
  await running
  return count.trial
}

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

const round = (ms: number) => Number(ms.toFixed(1))

const summary = (results: ReadonlyArray<Trial>) => {
  const stale = results.filter((t) => t.staleProbes > 0).map((t) => t.staleUntilMs)
  return {
    trials: results.length,
    probes: results.reduce((sum, t) => sum + t.probes, 0),
    staleProbes: results.reduce((sum, t) => sum + t.staleProbes, 0),
    trialsWithStaleProbes: stale.length,
    // Over the trials with stale probes: the latest stale answer, after A's.
    staleUntilMs: {
      p50: round(percentile(stale, 50)),
      p99: round(percentile(stale, 99)),
      max: round(Math.max(0, ...stale))
    }
  }
}

const program = Effect.gen(function*() {
  const redis = yield* RedisServer.scoped()
  const secret = randomBytes(32).toString("base64url")
  const [a, b] = yield* Effect.all([
    AppProcess.start({ redisUrl: redis.url, secret }),
    AppProcess.start({ redisUrl: redis.url, secret })
  ])
  return yield* Effect.promise(async () => {
    const idle: Array<Trial> = []
    for (let n = 0; n < trials; n++) idle.push(await probed(a.port, b.port, n, "idle"))
    log(`idle: ${JSON.stringify(summary(idle))}`)

    let loading = true
    let served = 0
    const cookies = await Promise.all(Array.from({ length: clients }, (_, i) => login(b.port, `load-${i}`, "load")))
    const load = Promise.all(cookies.map(async (cookie) => {
      while (loading) {
        await whoami(b.port, cookie, "load")
        served++
      }
    }))
    const started = performance.now()
    const busy: Array<Trial> = []
    for (let n = 0; n < trials; n++) busy.push(await probed(a.port, b.port, n, "load"))
    const loadSeconds = (performance.now() - started) / 1000
    loading = false
    await load
    log(`under load: ${JSON.stringify(summary(busy))}`)

    const stolen: Array<Trial> = []
    for (let n = 0; n < trials; n++) stolen.push(await hammered(a.port, b.port, n))
    log(`hammered: ${JSON.stringify(summary(stolen))}`)
    return {
      date: new Date().toISOString().slice(0, 10),
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: os.loadavg()[0]!.toFixed(2),
      burst,
      idle: summary(idle),
      underLoad: { clients, requestsPerSecondOnB: Math.round(served / loadSeconds), ...summary(busy) },
      hammered: { clients, ...summary(stolen) }
    }
  })
})

Effect.runPromise(Effect.scoped(program)).then(
  (result) => {
    closeAgents()
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
    process.exit(0)
  },
  (error: unknown) => {
    log(`revocation run failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    process.exit(1)
  }
)
