/**
 * Two scenarios run after the load, against the same two app instances and
 * Redis (issue 19):
 *
 * - **Regenerate against sign-out-everywhere.** A user logs in on A and counts
 *   a few visits. Then, at once, the same session logs in again on B (the
 *   demo's `POST /login`: `login`, a regenerate) and signs out everywhere on
 *   A, one of them with a head start of up to 10 ms. Whatever the order, no session
 *   of that user may hold the old session's visits afterwards: that would be
 *   the revoked session come back under a new id. (A fresh login, after the
 *   revocation, starts from zero visits and is legitimate.)
 * - **Aborted writes under a stalled Redis.** Redis is frozen (SIGSTOP);
 *   requests that write a session (`GET /`, new sessions) reach A, and their
 *   clients hang up while the writes wait; then Redis is thawed. Once every
 *   write is done, A's request fibers must be back to none, and its heap
 *   (after full GCs) where it was.
 */
import * as http from "node:http"
import type { RedisServer } from "../test/support/RedisServer.js"
import { type Reply, request } from "./http.js"
import type { Instance, Stats } from "./instances.js"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const timeoutMs = 20_000

export interface RaceResult {
  readonly trials: number
  /**
   * Trials in which B's login had moved the session before A's request read it: A's cookie named no
   * session any more, so there was nothing to revoke (A answers 401), and the moved session lives on.
   */
  readonly movedBeforeRead: number
  /** Of the trials that revoked, those whose login answered with the moved session (then revoked too). */
  readonly movedFirst: number
  /** Trials after which a session of the user still held the revoked session's data. */
  readonly revived: number
  /** Requests answered with neither 200 nor that 401 (the store was fine: any is a finding). */
  readonly failed: number
}

const visitsOf = (reply: Reply): number | undefined => {
  try {
    const body = JSON.parse(reply.body) as { visits?: unknown }
    return typeof body.visits === "number" ? body.visits : undefined
  } catch {
    return undefined
  }
}

/**
 * The user's live sessions in Redis, with the visits they hold: those its index lists (a bound session
 * is listed before it exists), and `also` (ids a response handed out), read directly.
 */
const sessionsOf = async (server: RedisServer, prefix: string, user: string, also: ReadonlyArray<string>) => {
  const redis = server.client()
  const listed = await redis.zrange(`${prefix}user:{${user}}`, "0", "-1")
  const found: Array<{ id: string; visits: number }> = []
  for (const id of new Set([...listed, ...also])) {
    const [created, bound, visits] = await redis.hmget(prefix + id, "$c", "$u", "visits")
    if (created !== null && bound === user) found.push({ id, visits: visits === null ? 0 : Number(visits) })
  }
  return found
}

export const regenerateRace = async (
  instances: readonly [Instance, Instance],
  server: RedisServer,
  prefix: string,
  trials: number
): Promise<RaceResult> => {
  const [a, b] = instances
  let movedBeforeRead = 0
  let movedFirst = 0
  let revived = 0
  let failed = 0
  for (let trial = 0; trial < trials; trial++) {
    const name = `race-${trial}-${Date.now().toString(36)}`
    const login = await request(a.port, { method: "POST", path: "/login", body: JSON.stringify({ name }), timeoutMs })
    if (login.status !== 200 || typeof login.sid !== "string") {
      failed++
      continue
    }
    const cookie = `sid=${login.sid}`
    // Visits 1 to 3: the data a revived session would carry.
    for (let i = 0; i < 3; i++) await request(a.port, { method: "GET", path: "/", cookie, timeoutMs })
    // Either one gets a head start of up to 10 ms: both orders, and every overlap between, happen.
    const lead = (Math.random() - 0.5) * 20
    const [again, revoked] = await Promise.all([
      sleep(Math.max(0, lead)).then(() =>
        request(b.port, { method: "POST", path: "/login", cookie, body: JSON.stringify({ name }), timeoutMs })
      ),
      sleep(Math.max(0, -lead)).then(() =>
        request(a.port, { method: "POST", path: "/logout-everywhere", cookie, timeoutMs })
      )
    ])
    if (again.status !== 200 || (revoked.status !== 200 && revoked.status !== 401)) {
      failed++
      continue
    }
    if (revoked.status === 401) {
      movedBeforeRead++
      continue
    }
    if (typeof again.sid === "string" && (visitsOf(again) ?? 0) >= 3) movedFirst++
    const handedOut = [again.sid, revoked.sid].filter((sid): sid is string => typeof sid === "string")
    const live = await sessionsOf(server, prefix, name, handedOut.map((sid) => sid.slice(0, sid.lastIndexOf("."))))
    if (live.some((s) => s.visits >= 3)) revived++
  }
  return { trials, movedBeforeRead, movedFirst, revived, failed }
}

export interface AbortResult {
  readonly requests: number
  /** Requests per round. */
  readonly batch: number
  /** The heap after full GCs, before the measured rounds and after them. */
  readonly heapBefore: number
  readonly heapAfter: number
  /** Request fibers still alive once every write was done (a leak: each holds its request). */
  readonly fibersLeft: number
  /** Responses the server saw closed by their client before they were ended. */
  readonly aborted: number
}

const until = async (instance: Instance, ok: (s: Stats) => boolean, limitMs: number): Promise<Stats> => {
  const deadline = Date.now() + limitMs
  for (;;) {
    const stats = await instance.stats(false)
    if (ok(stats) || Date.now() > deadline) return stats
    // A poll interval, not a wait for an outcome.
    await sleep(20)
  }
}

/** `n` requests that write a new session, on connections of their own, that `abort` hangs up. */
const pendingWrites = (port: number, n: number) => {
  const requests = Array.from({ length: n }, () => {
    const req = http.request({ port, host: "127.0.0.1", path: "/", method: "GET", agent: false })
    req.on("error", () => undefined)
    req.end()
    return req
  })
  return { abort: () => requests.forEach((req) => req.destroy()) }
}

export const abortedWrites = async (
  instance: Instance,
  server: RedisServer,
  rounds: number,
  batch: number
): Promise<AbortResult> => {
  let fibersLeft = 0
  let aborted = 0
  let heapBefore = 0
  // Round 0 warms the abort path itself; rounds 1..n are measured.
  for (let round = 0; round <= rounds; round++) {
    if (round === 1) heapBefore = (await instance.stats(true)).heapUsed
    const start = await instance.stats(false)
    server.freeze()
    try {
      const writes = pendingWrites(instance.port, batch)
      // Every request waits in its write, on Redis; then every client hangs up, and the server sees it.
      // (Bounded well within commandTimeout, after which the writes would fail instead of waiting.)
      await until(instance, (s) => s.fibers >= start.fibers + batch, 1_500)
      writes.abort()
      await until(instance, (s) => s.aborted >= start.aborted + batch, 1_500)
    } finally {
      server.thaw()
    }
    const settled = await until(instance, (s) => s.fibers <= start.fibers, 30_000)
    if (round > 0) {
      fibersLeft += settled.fibers - start.fibers
      aborted += settled.aborted - start.aborted
    }
  }
  const heapAfter = (await instance.stats(true)).heapUsed
  return { requests: rounds * batch, batch, heapBefore, heapAfter, fibersLeft, aborted }
}
