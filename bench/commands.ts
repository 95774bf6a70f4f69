/**
 * Commands per request: how many Redis commands a read-only request for a
 * session the server has already seen sends, counted by Redis itself
 * (CONFIG RESETSTAT, then INFO commandstats).
 */
import { Redis } from "ioredis"
import { login, request, startServer } from "./http/client.js"
import type { Mode } from "./http/modes.js"
import type { BenchRedis } from "./redis.js"
import { log, quick } from "./stats.js"

export interface CommandCount {
  readonly requests: number
  readonly perRequest: number
  /** Calls per command name over all the requests. */
  readonly byCommand: Record<string, number>
}

/** Calls by command from INFO commandstats, without the ones the bench itself sends. */
export const commandStats = async (raw: Redis): Promise<Record<string, number>> => {
  const info = await raw.info("commandstats")
  const calls: Record<string, number> = {}
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    const name = match[1]!
    if (name === "info" || name.startsWith("config")) continue
    calls[name] = Number(match[2])
  }
  return calls
}

const count = async (mode: Mode, redis: BenchRedis, raw: Redis, requests: number): Promise<CommandCount> => {
  const server = await startServer(mode, redis)
  try {
    const [cookie] = await login(server.port, 1)
    // A first read so that the session is known to the server (cached, for ours).
    for (let i = 0; i < 3; i++) await request(server.port, "GET", "/read", cookie)
    await raw.config("RESETSTAT")
    for (let i = 0; i < requests; i++) {
      const reply = await request(server.port, "GET", "/read", cookie)
      if (reply.status !== 200) throw new Error(`read answered ${reply.status}`)
    }
    const byCommand = await commandStats(raw)
    const total = Object.values(byCommand).reduce((a, b) => a + b, 0)
    return { requests, perRequest: total / requests, byCommand }
  } finally {
    await server.stop()
  }
}

export const runCommandsPerRequest = async (
  redis: BenchRedis
): Promise<{ ours: CommandCount; expressSession: CommandCount; expressSessionCsc: CommandCount }> => {
  const requests = quick ? 200 : 1000
  log(`\n[5/8] Redis commands per cached read-only request (${requests} sequential requests, INFO commandstats)`)
  const raw = new Redis({ host: redis.host, port: redis.port })
  try {
    const ours = await count("ours", redis, raw, requests)
    log(
      `    ${"ours (HttpSession)".padEnd(46)} ${ours.perRequest.toFixed(2)} per request ${
        JSON.stringify(ours.byCommand)
      }`
    )
    const expressSession = await count("express", redis, raw, requests)
    log(
      `    ${"express-session + connect-redis".padEnd(46)} ${expressSession.perRequest.toFixed(2)} per request ${
        JSON.stringify(expressSession.byCommand)
      }`
    )
    const expressSessionCsc = await count("expressCsc", redis, raw, requests)
    log(
      `    ${"express-session + connect-redis, node-redis CSC".padEnd(46)} ${
        expressSessionCsc.perRequest.toFixed(2)
      } per request ${JSON.stringify(expressSessionCsc.byCommand)}`
    )
    return { ours, expressSession, expressSessionCsc }
  } finally {
    await raw.quit()
  }
}
