/**
 * `legacyPrefix`: sessions that connect-redis wrote (JSON strings at
 * `sess:<id>`) are imported on their first read, once, atomically, with their
 * remaining lifetime; both halves of an app that moves from Express read
 * them. On a real redis-server, with the real connect-redis.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import { RedisStore } from "connect-redis"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import express from "express"
import session from "express-session"
import { createHmac, randomBytes } from "node:crypto"
import type { Server } from "node:http"
import { createClient } from "redis"
import { ExpressStore } from "../src/express.js"
import * as HttpSession from "../src/HttpSession.js"
import * as SessionStore from "../src/SessionStore.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

const secret = "legacy-secret-for-tests-0123456789abcdef"

/** Writes a session the way express-session + connect-redis do, and returns its id. */
const writeLegacy = async (server: RedisServer.RedisServer, data: Record<string, unknown>): Promise<string> => {
  const client = createClient({ socket: { host: server.host, port: server.port } })
  await client.connect()
  try {
    const theirs = new RedisStore({ client, prefix: "sess:" })
    const id = randomBytes(24).toString("base64url")
    const cookie = { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000), httpOnly: true, path: "/" }
    await new Promise<void>((resolve, reject) =>
      theirs.set(
        id,
        { cookie, ...data } as unknown as session.SessionData,
        (error) => error ? reject(error) : resolve()
      )
    )
    return id
  } finally {
    await client.quit()
  }
}

describe("legacyPrefix: lazy import of connect-redis sessions", () => {
  it("imports a connect-redis session on its first read, keeps its lifetime, and removes the legacy key", async () => {
    const server = await RedisServer.start()
    const store = await SessionStore.open(server.settings({ legacyPrefix: "sess:" }))
    try {
      const id = await writeLegacy(server, { user: "ada", cart: ["book"] })
      const found = await store.retrieve(id)
      expect(found?.data).toMatchObject({ user: "ada", cart: ["book"], cookie: { httpOnly: true, path: "/" } })
      const redis = server.client()
      expect(await redis.exists(`sess:${id}`)).toBe(0)
      // connect-redis set the lifetime from the cookie (1 hour), not the store's 15 minutes.
      const pttl = await redis.pttl(`session:${id}`)
      expect(pttl).toBeGreaterThan(15 * 60_000)
      expect(pttl).toBeLessThanOrEqual(3_600_000)
      // From now on it is an ordinary session: flush writes fields.
      await store.flush({ ...found!, data: { ...found!.data, cart: ["book", "pen"] } })
      expect((await store.retrieve(id))?.data).toMatchObject({ user: "ada", cart: ["book", "pen"] })
      // It keeps the cookie's maxAge as its own lifetime: it slides by an hour, as under connect-redis.
      expect(Duration.toMillis(found!.expire!)).toBe(3_600_000)
      expect(await redis.pttl(`session:${id}`)).toBeGreaterThan(3_590_000)
    } finally {
      await store.close()
      await server.stop()
    }
  })

  it("without the setting a miss sends nothing more, and the legacy key is left alone", async () => {
    const server = await RedisServer.start()
    const store = await SessionStore.open(server.settings())
    try {
      const id = await writeLegacy(server, { user: "bob" })
      const counted = await server.countCommandsDuring(() => store.retrieve(id))
      expect(counted.value).toBeUndefined()
      expect(Object.keys(counted.commands).sort()).toEqual(["hgetall", "pttl"])
      expect(await server.client().exists(`sess:${id}`)).toBe(1)
    } finally {
      await store.close()
      await server.stop()
    }
  })

  it("two instances reading a legacy session at once import it once", async () => {
    const server = await RedisServer.start()
    const a = await SessionStore.open(server.settings({ legacyPrefix: "sess:" }))
    const b = await SessionStore.open(server.settings({ legacyPrefix: "sess:" }))
    try {
      for (let round = 0; round < 20; round++) {
        const id = await writeLegacy(server, { round })
        const [fromA, fromB] = await Promise.all([a.retrieve(id), b.retrieve(id)])
        expect(fromA?.data).toMatchObject({ round })
        expect(fromB?.data).toMatchObject({ round })
        // One import: both read the same creation, and the session is still at its first version.
        expect(fromA?.createdAt).toBe(fromB?.createdAt)
        const hash = await server.client().hgetall(`session:${id}`)
        expect(hash["$v"]).toBe("1")
        expect(await server.client().exists(`sess:${id}`)).toBe(0)
      }
    } finally {
      await Promise.all([a.close(), b.close()])
      await server.stop()
    }
  })

  it("after the switch, an Express app on ExpressStore keeps its logged-in users", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings({ legacyPrefix: "sess:" }))
    const app = express()
    app.use(session({ store, secret, resave: false, saveUninitialized: false }))
    app.get("/me", (req, res) => res.json({ user: (req.session as unknown as { user?: string }).user ?? null }))
    const http = await new Promise<Server>((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s))
    })
    try {
      const id = await writeLegacy(server, { user: "grace" })
      // The browser's cookie from before the switch, signed as express-session signs it.
      const signature = createHmac("sha256", secret).update(id).digest("base64").replace(/=+$/, "")
      const address = http.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const reply = await fetch(`http://127.0.0.1:${port}/me`, {
        headers: { cookie: `connect.sid=${encodeURIComponent(`s:${id}.${signature}`)}` }
      })
      expect(await reply.json()).toEqual({ user: "grace" })
    } finally {
      http.closeAllConnections()
      await new Promise<void>((done) => http.close(() => done()))
      await store.close()
      await server.stop()
    }
  })

  it.scopedLive("after the switch, an Effect route with express-session's cookie keeps them logged in too", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* Effect.acquireRelease(
        Effect.promise(() => SessionStore.open(server.settings({ legacyPrefix: "sess:" }))),
        (s) => Effect.promise(() => s.close())
      )
      const middleware = yield* HttpSession.middleware({
        secrets: [secret],
        name: "connect.sid",
        cookieFormat: "express-session"
      })
      const router = HttpRouter.empty.pipe(
        HttpRouter.get(
          "/me",
          Effect.map(
            Effect.flatMap(HttpSession.HttpSession, (s) => s.get("user")),
            (user) => HttpServerResponse.unsafeJson({ user: user._tag === "Some" ? user.value : null })
          )
        )
      )
      const url = yield* Http.serve(middleware(router)).pipe(
        Effect.provideService(SessionStore.SessionStore, store.store)
      )
      const id = yield* Effect.promise(() => writeLegacy(server, { user: "hopper" }))
      const signature = createHmac("sha256", secret).update(id).digest("base64").replace(/=+$/, "")
      const client = Http.makeClient(url)
      const reply = yield* client.request("/me", {
        cookie: `connect.sid=${encodeURIComponent(`s:${id}.${signature}`)}`
      })
      expect(reply.body).toEqual({ user: "hopper" })
      expect(reply.setCookies).toEqual([])
    }))
})
