/**
 * Lost updates: 100 concurrent requests to one session, each setting a
 * different field. Counts the fields that survive in Redis (and, for
 * information, what the server itself then reports), for ours and for
 * express-session + connect-redis.
 */
import { Redis } from "ioredis"
import { login, request, startServer } from "./http/client.js"
import type { Mode } from "./http/modes.js"
import type { BenchRedis } from "./redis.js"
import { log, quick } from "./stats.js"

export interface LostUpdateResult {
  readonly requests: number
  readonly trials: number
  /** Fields lost per trial, counted in Redis. */
  readonly lostPerTrial: Array<number>
  /** Fields missing per trial from the server's own view of the session (its /dump route). */
  readonly missingFromServerViewPerTrial: Array<number>
  /** The worst trial. */
  readonly lost: number
}

const requests = 100

/** The fields `k0`..`k99` present in what Redis holds for the only session in the db. */
const survivingInRedis = async (raw: Redis, mode: Mode): Promise<Set<string>> => {
  const keys = await raw.keys(mode === "ours" ? "session:*" : "sess:*")
  if (keys.length !== 1) throw new Error(`expected one session key, found ${keys.length}`)
  const fields = mode === "ours"
    ? Object.keys(await raw.hgetall(keys[0]!))
    : Object.keys(JSON.parse((await raw.get(keys[0]!)) ?? "{}") as Record<string, unknown>)
  return new Set(fields.filter((f) => /^k\d+$/.test(f)))
}

const trial = async (
  mode: Mode,
  redis: BenchRedis,
  raw: Redis
): Promise<readonly [lost: number, missingInView: number]> => {
  await raw.flushall()
  const server = await startServer(mode, redis)
  try {
    const [cookie] = await login(server.port, 1)
    const replies = await Promise.all(
      Array.from({ length: requests }, (_, i) => request(server.port, "GET", `/set/k${i}`, cookie))
    )
    const failed = replies.filter((r) => r.status !== 200)
    if (failed.length > 0) {
      throw new Error(`${failed.length} of the concurrent requests failed: ${failed[0]!.status} ${failed[0]!.body}`)
    }
    const inRedis = await survivingInRedis(raw, mode)
    const view = JSON.parse((await request(server.port, "GET", "/dump", cookie)).body) as Record<string, unknown>
    const inView = Object.keys(view).filter((k) => /^k\d+$/.test(k)).length
    return [requests - inRedis.size, requests - inView]
  } finally {
    await server.stop()
  }
}

const measure = async (mode: Mode, label: string, redis: BenchRedis, raw: Redis): Promise<LostUpdateResult> => {
  const trials = quick ? 1 : 3
  const lostPerTrial: Array<number> = []
  const missingFromServerViewPerTrial: Array<number> = []
  for (let t = 0; t < trials; t++) {
    const [lost, missing] = await trial(mode, redis, raw)
    lostPerTrial.push(lost)
    missingFromServerViewPerTrial.push(missing)
  }
  const lost = Math.max(...lostPerTrial)
  log(
    `    ${label.padEnd(46)} lost ${lostPerTrial.join(", ")} of ${requests} (server's own view missing ${
      missingFromServerViewPerTrial.join(", ")
    })`
  )
  return { requests, trials, lostPerTrial, missingFromServerViewPerTrial, lost }
}

export const runLostUpdates = async (
  redis: BenchRedis
): Promise<{ ours: LostUpdateResult; expressSession: LostUpdateResult }> => {
  log(`\n[4/8] Lost updates: ${requests} concurrent requests to one session, each setting a different field`)
  const raw = new Redis({ host: redis.host, port: redis.port })
  try {
    const ours = await measure("ours", "ours (HttpSession, delta flush)", redis, raw)
    const expressSession = await measure("express", "express-session + connect-redis", redis, raw)
    return { ours, expressSession }
  } finally {
    await raw.quit()
  }
}
