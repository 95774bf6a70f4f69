/**
 * Clients that hang up while their request's session is being written to a
 * stalled Redis (issue 19, point 2). The app runs in a process of its own
 * (with --expose-gc) so that its heap can be measured after full collections:
 * 5,000 aborted writes must leave its heap, and its count of live request
 * fibers, where they were.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as http from "node:http"
import * as AppProcess from "./support/AppProcess.js"
import { RedisServer } from "./support/index.js"

interface Stats {
  readonly heapUsed: number
  readonly fibers: number
  readonly aborted: number
}

const get = (port: number, path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    http.get({ port, host: "127.0.0.1", path, agent: false }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => resolve(body))
    }).on("error", reject)
  })

const stats = (port: number, gc = true) =>
  Effect.promise(async () => JSON.parse(await get(port, gc ? "/stats" : "/stats?gc=0")) as Stats)

/** Polls the app's stats until `ok` holds. */
const until = (port: number, what: string, ok: (s: Stats) => boolean, timeoutMs = 30_000) =>
  RedisServer.eventually(
    Effect.flatMap(stats(port, false), (s) => ok(s) ? Effect.succeed(s) : Effect.fail(`${what}: ${JSON.stringify(s)}`)),
    { timeoutMs, intervalMs: 20 }
  )

/** A POST /write on a connection of its own, answered normally. */
const write = (port: number) =>
  new Promise<void>((resolve, reject) => {
    const request = http.request({ port, host: "127.0.0.1", path: "/write", method: "POST", agent: false }, (res) => {
      res.resume()
      res.on("end", () => resolve())
    })
    request.on("error", reject)
    request.end()
  })

/** POST /write on connections of their own, left open: `abort` hangs them all up. */
const pendingWrites = (port: number, n: number) => {
  const requests = Array.from({ length: n }, () => {
    const request = http.request({ port, host: "127.0.0.1", path: "/write", method: "POST", agent: false })
    request.on("error", () => undefined)
    request.end()
    return request
  })
  return { abort: () => requests.forEach((request) => request.destroy()) }
}

describe("aborted requests under a stalled Redis", () => {
  it.scopedLive(
    "5,000 aborted writes leave the heap and the live request fibers where they were",
    () =>
      Effect.gen(function*() {
        const redis = yield* RedisServer.scoped()
        // A command timeout far beyond the stall, so that every commit waits for Redis to come back.
        const app = yield* AppProcess.start({
          redisUrl: redis.url,
          secret: randomBytes(24).toString("base64url"),
          commandTimeoutMs: 60_000,
          cacheCapacity: 100
        })
        // Warm: the near-cache full, the code compiled, the pools allocated.
        for (let round = 0; round < 4; round++) {
          yield* Effect.promise(() => Promise.all(Array.from({ length: 250 }, () => write(app.port))))
        }
        const batch = 500
        let aborted = (yield* stats(app.port, false)).aborted
        let before: Stats | undefined
        // The first round warms the abort path itself (about 1 MiB, once); the next ten are measured.
        for (let round = 0; round <= 10; round++) {
          if (round === 1) before = yield* stats(app.port)
          redis.freeze()
          const writes = pendingWrites(app.port, batch)
          // Every request has run its handler and waits in its commit, on Redis.
          yield* until(app.port, "requests in flight", (s) => s.fibers >= batch)
          writes.abort()
          // The server has seen every client go.
          yield* until(app.port, "clients gone", (s) => s.aborted >= aborted + batch)
          aborted += batch
          redis.thaw()
          // Every commit finishes once Redis answers, and its fiber with it.
          yield* until(app.port, "request fibers still alive after Redis came back", (s) => s.fibers === 0)
        }
        const after = yield* stats(app.port)
        const growth = after.heapUsed - before!.heapUsed
        yield* Effect.log(`heap growth after ${10 * batch} aborted writes: ${(growth / 1024).toFixed(0)} KiB`)
        // The leak this guards against held about 27 KiB per request (128 MiB here). Without it the heap
        // grows by 0.7 to 0.9 MiB whatever the number of requests (allocator and pool growth); the bound
        // catches any leak of half a KiB per request or more.
        expect(growth).toBeLessThan(2.5 * 1024 * 1024)
      }).pipe(RedisServer.hangGuard(240_000, "aborted writes")),
    240_000
  )
})
