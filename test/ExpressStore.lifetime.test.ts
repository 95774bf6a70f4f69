/**
 * ExpressStore keeps express-session's lifetime, as connect-redis does: the
 * time until `cookie.expires` is the session's own lifetime (a set with
 * `expires` in 60 s gives a TTL of at most 60 s; one in the past deletes the
 * session), so that moving from connect-redis changes no user's lifetime, and
 * a cookie kept past its Expires finds nothing. On a real redis-server.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import express from "express"
import session from "express-session"
import type { Server } from "node:http"
import { ExpressStore } from "../src/express.js"
import * as Session from "../src/internal/codec.js"
import { RedisServer } from "./support/index.js"

const secret = "express-lifetime-secret-0123456789abcd"
const key = (sid: string) => `session:${sid}`

/** express-session's callback API as Promises. */
const set = (store: ExpressStore.ExpressStore, sid: string, sess: unknown) =>
  new Promise<void>((resolve, reject) =>
    store.set(sid, sess as session.SessionData, (e) => (e === undefined || e === null ? resolve() : reject(e)))
  )
const touch = (store: ExpressStore.ExpressStore, sid: string, sess: unknown) =>
  new Promise<void>((resolve, reject) =>
    store.touch(sid, sess as session.SessionData, (e) => (e === undefined || e === null ? resolve() : reject(e)))
  )
const get = (store: ExpressStore.ExpressStore, sid: string) =>
  new Promise<session.SessionData | null | undefined>((resolve, reject) =>
    store.get(sid, (e, found) => (e === undefined || e === null ? resolve(found) : reject(e)))
  )

const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000)

/** An Express app with express-session on `store`: POST /login/:user stores the user, GET /me reads it. */
const startApp = async (store: session.Store, cookie: session.CookieOptions, rolling = false) => {
  const app = express()
  app.use(session({ store, secret, resave: false, saveUninitialized: false, rolling, cookie }))
  app.post("/login/:user", (req, res) => {
    ;(req.session as unknown as Record<string, unknown>).user = req.params.user
    res.json({ ok: true })
  })
  app.get("/me", (req, res) => {
    res.json({ user: (req.session as unknown as Record<string, unknown>).user ?? null })
  })
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s))
  })
  const address = server.address()
  const url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`
  /** One request; returns the body and the `connect.sid` cookie the response set, if any. */
  const call = async (method: "GET" | "POST", path: string, sid?: string) => {
    const response = await fetch(url + path, {
      method,
      headers: sid === undefined ? {} : { cookie: `connect.sid=${sid}` },
      signal: AbortSignal.timeout(20_000)
    })
    const set = response.headers.getSetCookie().find((c) => c.startsWith("connect.sid="))
    return {
      body: (await response.json()) as { user?: string | null },
      cookie: set?.slice("connect.sid=".length).split(";")[0],
      /** What the cookie's Expires says, in ms from now. */
      expiresIn: set === undefined ? undefined : Date.parse(/Expires=([^;]+)/i.exec(set)?.[1] ?? "") - Date.now()
    }
  }
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return { call, close }
}

const idOf = (cookie: string): string => {
  const value = decodeURIComponent(cookie)
  return value.slice(2, value.lastIndexOf("."))
}

const eventually = (check: () => Promise<void>, timeoutMs = 20_000): Promise<void> =>
  Effect.runPromise(RedisServer.eventually(Effect.tryPromise(check), { timeoutMs, intervalMs: 50 }))

describe("ExpressStore lifetimes (connect-redis semantics)", () => {
  it("set takes the lifetime from cookie.expires; touch with a later expires stretches it; one in the past deletes", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings({ expire: 600 }))
    const redis = server.client()
    try {
      // No expires (a browser-session cookie): the store's lifetime, and no lifetime field.
      await set(store, "12312312312312312312312312312312", { foo: "bar", cookie: { originalMaxAge: null } })
      expect(await redis.ttl(key("12312312312312312312312312312312"))).toBeGreaterThan(590)
      expect(await redis.ttl(key("12312312312312312312312312312312"))).toBeLessThanOrEqual(600)
      expect(await redis.hexists(key("12312312312312312312312312312312"), Session.expireField)).toBe(0)
      expect(await get(store, "12312312312312312312312312312312")).toMatchObject({
        foo: "bar",
        cookie: { originalMaxAge: null }
      })

      const expires = inSeconds(60)
      await set(store, "45645645645645645645645645645645", { cookie: { originalMaxAge: null, expires } })
      const ttl = await redis.ttl(key("45645645645645645645645645645645"))
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(60)
      expect(await redis.hget(key("45645645645645645645645645645645"), Session.expireField)).toBe("60000")
      // Touched with an expiry 90 s ahead (no get before it, as connect-redis's test does).
      await touch(store, "45645645645645645645645645645645", {
        cookie: { originalMaxAge: null, expires: inSeconds(90) }
      })
      expect(await redis.ttl(key("45645645645645645645645645645645"))).toBeGreaterThan(60)
      expect(await redis.ttl(key("45645645645645645645645645645645"))).toBeLessThanOrEqual(90)
      // The stored data (with its cookie) is what the last set wrote.
      expect(await get(store, "45645645645645645645645645645645")).toMatchObject({
        cookie: { expires: expires.toISOString() }
      })

      // An express-session Cookie, as express-session hands it over.
      const cookie = new session.Cookie()
      cookie.maxAge = 120_000
      await set(store, "78978978978978978978978978978978", { cookie })
      expect(await redis.ttl(key("78978978978978978978978978978978"))).toBeGreaterThan(110)
      expect(await redis.ttl(key("78978978978978978978978978978978"))).toBeLessThanOrEqual(120)

      // In the past: the session is deleted, by set and by touch.
      await set(store, "78978978978978978978978978978978", {
        cookie: { originalMaxAge: null, expires: inSeconds(-60) }
      })
      expect(await redis.exists(key("78978978978978978978978978978978"))).toBe(0)
      expect(await get(store, "78978978978978978978978978978978")).toBeNull()
      await touch(store, "45645645645645645645645645645645", {
        cookie: { originalMaxAge: null, expires: inSeconds(-1) }
      })
      expect(await redis.exists(key("45645645645645645645645645645645"))).toBe(0)
      // A touch of a session that does not exist creates nothing.
      await touch(store, "nothingnothingnothingnothingnoth", {
        cookie: { originalMaxAge: null, expires: inSeconds(60) }
      })
      expect(await redis.exists(key("nothingnothingnothingnothingnoth"))).toBe(0)
    } finally {
      await store.close()
      await server.stop()
    }
  })

  it("cookie.maxAge of 30 days: the session lives 30 days, not the store's expire; requests that change nothing rewrite no lifetime", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings({ expire: 900 }))
    const app = await startApp(store, { maxAge: Duration.toMillis(Duration.days(30)) })
    const redis = server.client()
    try {
      const login = await app.call("POST", "/login/ada")
      const id = idOf(login.cookie!)
      expect(await redis.ttl(key(id))).toBeGreaterThan(29 * 86_400)
      expect(await redis.hget(key(id), Session.expireField)).toBe(String(30 * 86_400_000))
      const found = Option.getOrThrow(await Effect.runPromise(store.store.retrieve(id)))
      expect(Duration.toDays(found.expire!)).toBe(30)
      // express-session touches the session on every request; the lifetime asked for is the same.
      const counted = await server.countCommandsDuring(() => app.call("GET", "/me", login.cookie))
      expect(counted.value.body).toEqual({ user: "ada" })
      expect(counted.commands["hset"] ?? 0).toBe(0)
      expect(counted.commands["pexpire"] ?? 0).toBe(0)
    } finally {
      await app.close()
      await store.close()
      await server.stop()
    }
  })

  it(
    "cookie.maxAge of 2 s: an active client keeps its session, and a cookie kept past its Expires is not accepted",
    async () => {
      const server = await RedisServer.start()
      const store = await ExpressStore.open(server.settings({ expire: 600 }))
      // rolling: express-session sends the cookie on every response, so an active browser keeps it.
      const app = await startApp(store, { maxAge: 2000 }, true)
      const redis = server.client()
      try {
        const active = (await app.call("POST", "/login/ada")).cookie!
        const idle = (await app.call("POST", "/login/bob")).cookie!
        expect(await redis.pttl(key(idOf(idle)))).toBeLessThanOrEqual(2000)
        const started = Date.now()
        let requests = 0
        while (Date.now() - started < 5000) {
          await new Promise((resolve) => setTimeout(resolve, 300))
          const reply = await app.call("GET", "/me", active)
          expect(reply.body, `after ${Date.now() - started} ms`).toEqual({ user: "ada" })
          // express-session writes Expires (2 s ahead, to the second), and re-sends it on every response.
          expect(reply.expiresIn).toBeGreaterThan(0)
          expect(reply.expiresIn).toBeLessThanOrEqual(2000)
          requests++
        }
        expect(requests).toBeGreaterThan(5)
        // The idle one's browser dropped the cookie after 2 s; the server ended the session as well,
        // so a client that kept the cookie past its Expires finds no session, and it is not extended.
        await eventually(async () => {
          expect(await redis.exists(key(idOf(idle)))).toBe(0)
        })
        expect((await app.call("GET", "/me", idle)).body).toEqual({ user: null })
        expect(await redis.exists(key(idOf(idle)))).toBe(0)
      } finally {
        await app.close()
        await store.close()
        await server.stop()
      }
    },
    60_000
  )
})
