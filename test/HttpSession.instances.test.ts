/**
 * Two app instances in processes of their own, on one Redis, over real HTTP:
 * a request that regenerates or logs in on one instance while "sign out
 * everywhere" runs on the other (issue 19, point 1).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { randomBytes } from "node:crypto"
import * as AppProcess from "./support/AppProcess.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

/** The live sessions bound to `user`, read from Redis itself. */
const liveOf = (redis: RedisServer.RedisServer, user: string) =>
  Effect.promise(async () => {
    const raw = redis.client()
    const live: Array<string> = []
    for (const key of await raw.keys("session:*")) {
      if (key.startsWith("session:user:")) continue
      const [created, bound] = await raw.hmget(key, "$c", "$u")
      if (created !== null && bound === user) live.push(key)
    }
    return live
  })

describe("two app processes on one Redis", () => {
  it.scopedLive(
    "B loads a session, A signs out everywhere, B's login or regenerate commits: the user stays signed out",
    () =>
      Effect.gen(function*() {
        const redis = yield* RedisServer.scoped()
        const secret = randomBytes(24).toString("base64url")
        const a = yield* AppProcess.start({ redisUrl: redis.url, secret })
        const b = yield* AppProcess.start({ redisUrl: redis.url, secret })
        for (const kind of ["login", "regenerate"] as const) {
          const user = `ann-${kind}`
          const browser = Http.makeClient(a.url)
          expect((yield* browser.post(`/login?user=${user}`)).body).toEqual({ user })
          const cookie = `sid=${browser.jar.get("sid")}`
          // On B, a request loads the session (it is logged in), then waits before it logs in again.
          const held = yield* Effect.fork(
            Http.makeClient(b.url).request(`/hold/${kind}?gate=${kind}&user=${user}`, { method: "POST", cookie })
          )
          yield* Http.makeClient(b.url).get(`/reached?gate=${kind}`)
          // "Sign out everywhere" on A, answered before B's request goes on.
          expect((yield* browser.post("/logout-everywhere")).body).toEqual({ revoked: 1 })
          yield* Http.makeClient(b.url).post(`/release?gate=${kind}`)
          const reply = yield* Fiber.join(held)
          expect(reply.body).toEqual({ before: user })
          // B's response hands out no live session: its cookie, if any, is expired.
          expect(reply.setCookies.filter((c) => !Http.isExpired(c))).toEqual([])
          // Whatever the browser holds now, neither instance knows the user.
          for (const app of [a, b]) {
            for (const sent of [cookie, ...reply.setCookies.map((c) => `sid=${c.value}`)]) {
              expect((yield* Http.makeClient(app.url).request("/whoami", { cookie: sent })).body).toEqual({
                user: null
              })
            }
          }
          expect(yield* liveOf(redis, user)).toEqual([])
        }
      }).pipe(RedisServer.hangGuard(90_000, "two app processes")),
    90_000
  )
})
