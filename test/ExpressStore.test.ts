/**
 * `effect-session-redis/express`: express 5 + express-session + ExpressStore
 * on a real redis-server, driven with plain `fetch`: login/read/logout,
 * concurrent field writes (against connect-redis as a contrast), two
 * instances on one Redis, forged cookies, and Redis going down.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisStore } from "connect-redis"
import * as Effect from "effect/Effect"
import express from "express"
import type { NextFunction, Request, Response } from "express"
import session from "express-session"
import { createHmac } from "node:crypto"
import type { Server } from "node:http"
import { createClient } from "redis"
import { ExpressStore } from "../src/express.js"
import * as Session from "../src/internal/codec.js"
import { RedisConnectionError } from "../src/SessionError.js"
import * as SessionStore from "../src/SessionStore.js"
import { RedisServer } from "./support/index.js"

const secret = "express-secret-for-tests-0123456789"
const prefix = "session:"

// ---------------------------------------------------------------------------
// The app under test
// ---------------------------------------------------------------------------

/** Holds requests after they have loaded their session, so that a test can make them overlap for sure. */
interface Gate {
  /** Resolves once `n` held requests have loaded their session. */
  readonly entered: Promise<void>
  /** Lets the held requests go on. */
  readonly release: () => void
  readonly enter: () => Promise<void>
}

const makeGate = (n = 1): Gate => {
  let enteredResolve!: () => void
  let releaseResolve!: () => void
  const entered = new Promise<void>((r) => (enteredResolve = r))
  const released = new Promise<void>((r) => (releaseResolve = r))
  let count = 0
  return {
    entered,
    release: () => releaseResolve(),
    enter: () => {
      if (++count === n) enteredResolve()
      return released
    }
  }
}

const fields = (req: Request): Record<string, unknown> => req.session as unknown as Record<string, unknown>

interface App {
  readonly url: string
  /** Errors the app's error handler received. */
  readonly errors: Array<unknown>
  /** Holds the next request to /held until released. */
  gate: Gate | undefined
  readonly close: () => Promise<void>
}

const startApp = async (store: session.Store, options: Partial<session.SessionOptions> = {}): Promise<App> => {
  const app = express()
  const state: { gate: Gate | undefined } = { gate: undefined }
  const errors: Array<unknown> = []
  app.use(session({ store, secret, resave: false, saveUninitialized: false, ...options }))
  app.post("/login/:user", (req, res) => {
    fields(req).user = req.params.user
    res.json({ ok: true })
  })
  app.get("/me", (req, res) => {
    res.json({ user: fields(req).user ?? null })
  })
  app.get("/cookie", (req, res) => {
    res.json({ maxAge: req.session.cookie.maxAge, expires: req.session.cookie.expires?.toISOString() ?? null })
  })
  app.post("/regenerate", (req, res, next) => {
    const { cookie: _cookie, ...data } = fields(req)
    req.session.regenerate((error) => {
      if (error !== undefined && error !== null) return next(error)
      Object.assign(req.session, data)
      res.json({ ok: true })
    })
  })
  app.get("/all", (req, res) => {
    const { cookie: _cookie, ...data } = fields(req)
    res.json(data)
  })
  app.post("/set/:field", (req, res) => {
    fields(req)[req.params.field] = req.params.field
    res.json({ ok: true })
  })
  app.post("/unset/:field", (req, res) => {
    delete fields(req)[req.params.field]
    res.json({ ok: true })
  })
  app.post("/held/:field", async (req, res) => {
    await state.gate?.enter()
    fields(req)[req.params.field] = req.params.field
    res.json({ ok: true })
  })
  app.post("/logout", (req, res, next) => {
    req.session.destroy((error) => (error === undefined || error === null ? res.json({ ok: true }) : next(error)))
  })
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    errors.push(error)
    if (res.headersSent) return next(error)
    const tag = typeof error === "object" && error !== null && "_tag" in error ? error._tag : "unknown"
    res.status(503).json({ error: tag })
  })
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s))
  })
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    errors,
    get gate() {
      return state.gate
    },
    set gate(gate) {
      state.gate = gate
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

interface Reply {
  readonly status: number
  readonly body: Record<string, unknown>
  /** The `connect.sid` cookie the reply set, if any. */
  readonly cookie: string | undefined
}

/** One request; `cookie` is sent as `connect.sid`. Bounded, so a hang fails the test instead of stalling it. */
const call = async (
  app: App,
  method: "GET" | "POST",
  path: string,
  cookie?: string | undefined
): Promise<Reply> => {
  const response = await fetch(app.url + path, {
    method,
    headers: cookie === undefined ? {} : { cookie: `connect.sid=${cookie}` },
    signal: AbortSignal.timeout(20_000)
  })
  const set = response.headers.getSetCookie().find((c) => c.startsWith("connect.sid="))
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    cookie: set?.slice("connect.sid=".length).split(";")[0]
  }
}

/** The session id inside a `connect.sid` cookie value (`s:<id>.<signature>`, URL-encoded). */
const idOf = (cookie: string): string => {
  const value = decodeURIComponent(cookie)
  return value.slice(2, value.lastIndexOf("."))
}

/** A `connect.sid` value for `id`, signed as express-session (cookie-signature) signs it. */
const signed = (id: string, key = secret): string =>
  encodeURIComponent(`s:${id}.${createHmac("sha256", key).update(id).digest("base64").replace(/=+$/, "")}`)

const login = async (app: App, user: string): Promise<string> => {
  const reply = await call(app, "POST", `/login/${user}`)
  expect(reply.status).toBe(200)
  expect(reply.cookie).toBeDefined()
  return reply.cookie!
}

/** Polls `check` until it stops throwing (an invalidation arrives a moment after the write it reports). */
const eventually = (check: () => Promise<void>): Promise<void> =>
  Effect.runPromise(RedisServer.eventually(Effect.tryPromise(check)))

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe("ExpressStore", () => {
  it("is an express-session Store: login, read, logout; a hash per session with express's cookie as a field", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings({ expire: 600 }))
    const app = await startApp(store)
    try {
      expect(store).toBeInstanceOf(session.Store)
      // saveUninitialized: false: a visitor who changes nothing gets no cookie and no Redis key.
      const anonymous = await call(app, "GET", "/me")
      expect(anonymous).toMatchObject({ status: 200, body: { user: null }, cookie: undefined })

      const cookie = await login(app, "alice")
      const id = idOf(cookie)
      expect(await call(app, "GET", "/me", cookie)).toMatchObject({ status: 200, body: { user: "alice" } })

      const redis = server.client()
      const hash = await redis.hgetall(prefix + id)
      expect(Object.keys(hash).sort()).toEqual([Session.createdField, Session.versionField, "cookie", "user"].sort())
      expect(JSON.parse(hash.user!)).toBe("alice")
      expect(JSON.parse(hash.cookie!)).toMatchObject({ originalMaxAge: null, httpOnly: true, path: "/" })
      // The store's lifetime, not connect-redis's one day.
      const ttl = await redis.pttl(prefix + id)
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(600_000)

      // A field removed by a request is removed from the hash.
      await call(app, "POST", "/set/theme", cookie)
      expect(await redis.hexists(prefix + id, "theme")).toBe(1)
      await call(app, "POST", "/unset/theme", cookie)
      expect(await redis.hexists(prefix + id, "theme")).toBe(0)

      expect(await call(app, "POST", "/logout", cookie)).toMatchObject({ status: 200 })
      expect(await call(app, "GET", "/me", cookie)).toMatchObject({ status: 200, body: { user: null } })
      expect(await redis.exists(prefix + id)).toBe(0)
      expect(app.errors).toEqual([])
    } finally {
      await app.close()
      await store.close()
      await server.stop()
    }
  })

  it("keeps every field of 100 concurrent requests on one session; connect-redis loses some", async () => {
    const server = await RedisServer.start()
    const ours = await ExpressStore.open(server.settings())
    const client = createClient({ socket: { host: server.host, port: server.port } })
    await client.connect()
    const theirs = new RedisStore({ client, prefix: "sess:" })
    const ourApp = await startApp(ours)
    const theirApp = await startApp(theirs)
    const count = 100
    try {
      // Every request loads the session, then all of them change it: each read what login wrote.
      const written = async (app: App): Promise<number> => {
        const cookie = await login(app, "bob")
        const gate = makeGate(count)
        app.gate = gate
        const replies = Promise.all(
          Array.from({ length: count }, (_, i) => call(app, "POST", `/held/f${i}`, cookie))
        )
        await gate.entered
        gate.release()
        expect((await replies).every((r) => r.status === 200)).toBe(true)
        const all = (await call(app, "GET", "/all", cookie)).body
        expect(all.user).toBe("bob")
        return Array.from({ length: count }, (_, i) => `f${i}`).filter((f) => all[f] === f).length
      }
      expect(await written(ourApp)).toBe(count)
      // connect-redis writes the whole session: each request stores what it read plus its own
      // field, so the last save wins and the other 99 fields are lost.
      expect(await written(theirApp)).toBe(1)
      expect(ourApp.errors).toEqual([])
    } finally {
      await ourApp.close()
      await theirApp.close()
      await ours.close()
      await client.quit()
      await server.stop()
    }
  })

  it("keeps express-session's cookie (maxAge, expires) across requests, and regenerate moves the data to a new id", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings())
    const app = await startApp(store, { cookie: { maxAge: 60_000 } })
    try {
      const cookie = await login(app, "kim")
      const read = (await call(app, "GET", "/cookie", cookie)).body
      expect(read.maxAge).toBeGreaterThan(0)
      expect(read.maxAge).toBeLessThanOrEqual(60_000)
      expect(typeof read.expires).toBe("string")

      const regenerated = await call(app, "POST", "/regenerate", cookie)
      expect(regenerated.cookie).toBeDefined()
      expect(idOf(regenerated.cookie!)).not.toBe(idOf(cookie))
      expect((await call(app, "GET", "/me", regenerated.cookie)).body).toEqual({ user: "kim" })
      expect((await call(app, "GET", "/me", cookie)).body).toEqual({ user: null })
      expect(await server.client().exists(prefix + idOf(cookie))).toBe(0)
      expect(app.errors).toEqual([])
    } finally {
      await app.close()
      await store.close()
      await server.stop()
    }
  })

  it("a request's save writes what it changed since its own read: a concurrent delete and set both stand", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings())
    const app = await startApp(store)
    try {
      const cookie = await login(app, "carol")
      await call(app, "POST", "/set/a", cookie)
      // The held request reads {user, a} and then waits; meanwhile another request removes `a`.
      const gate = makeGate()
      app.gate = gate
      const held = call(app, "POST", "/held/b", cookie)
      await gate.entered
      await call(app, "POST", "/unset/a", cookie)
      gate.release()
      expect((await held).status).toBe(200)
      // The held request did not touch `a`: it neither rewrites nor resurrects it.
      expect((await call(app, "GET", "/all", cookie)).body).toEqual({ user: "carol", b: "b" })
    } finally {
      await app.close()
      await store.close()
      await server.stop()
    }
  })

  it("a save racing a logout does not bring the session back", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings())
    const app = await startApp(store)
    try {
      const cookie = await login(app, "dave")
      const gate = makeGate()
      app.gate = gate
      const held = call(app, "POST", "/held/late", cookie)
      await gate.entered
      await call(app, "POST", "/logout", cookie)
      gate.release()
      expect((await held).status).toBe(200)
      expect(await call(app, "GET", "/me", cookie)).toMatchObject({ body: { user: null } })
      expect(await server.client().exists(prefix + idOf(cookie))).toBe(0)
    } finally {
      await app.close()
      await store.close()
      await server.stop()
    }
  })

  it("two instances on one Redis see each other's writes and logouts, warm near-caches included", async () => {
    const server = await RedisServer.start()
    const storeA = await ExpressStore.open(server.settings())
    const storeB = await ExpressStore.open(server.settings())
    const a = await startApp(storeA)
    const b = await startApp(storeB)
    try {
      const cookie = await login(a, "erin")
      expect((await call(b, "GET", "/me", cookie)).body).toEqual({ user: "erin" })
      // Both instances now hold the session in their near-cache; A's second read is a hit.
      expect((await call(a, "GET", "/all", cookie)).body).toEqual({ user: "erin" })
      expect((await call(a, "GET", "/all", cookie)).body).toEqual({ user: "erin" })
      expect((await Effect.runPromise(storeA.store.cacheStats)).hits).toBeGreaterThan(0)
      await call(b, "POST", "/set/cart", cookie)
      await eventually(async () => {
        expect((await call(a, "GET", "/all", cookie)).body).toEqual({ user: "erin", cart: "cart" })
      })
      await call(a, "POST", "/logout", cookie)
      await eventually(async () => {
        expect((await call(b, "GET", "/me", cookie)).body).toEqual({ user: null })
      })
    } finally {
      await a.close()
      await b.close()
      await storeA.close()
      await storeB.close()
      await server.stop()
    }
  })

  it("fromStore shares one store between the Express half and Effect code, both ways", async () => {
    const server = await RedisServer.start()
    const shared = await SessionStore.open(server.settings())
    const store = ExpressStore.fromStore(shared)
    const app = await startApp(store)
    try {
      const cookie = await login(app, "frank")
      expect((await shared.retrieve(idOf(cookie)))?.data).toMatchObject({ user: "frank" })
      // A session the Effect half created (no `cookie` field) loads in Express with a default cookie.
      const native = await shared.create({ user: "grace" })
      const nativeCookie = signed(native.id)
      expect((await call(app, "GET", "/me", nativeCookie)).body).toEqual({ user: "grace" })
      await call(app, "POST", "/set/seen", nativeCookie)
      expect((await shared.retrieve(native.id))?.data).toMatchObject({ user: "grace", seen: "seen" })
      // Closing the adapter leaves the shared store open.
      await store.close()
      expect(await shared.retrieve(native.id)).toBeDefined()
    } finally {
      await app.close()
      await store.close()
      await shared.close()
      await server.stop()
    }
  })

  it("forged, unsigned, wrongly signed and unknown-but-signed cookies give a fresh session, never an error", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings())
    const app = await startApp(store)
    try {
      const victim = await login(app, "heidi")
      const victimId = idOf(victim)
      const forged = [
        "garbage",
        encodeURIComponent(`s:${victimId}.not-a-signature`),
        encodeURIComponent(victimId),
        signed(victimId, "some other secret"),
        signed("x".repeat(32)),
        signed("../../etc/passwd"),
        signed(""),
        "%E0%A4%A",
        "s%3A"
      ]
      for (const cookie of forged) {
        expect(await call(app, "GET", "/me", cookie)).toMatchObject({ status: 200, body: { user: null } })
        const fresh = await call(app, "POST", "/login/mallory", cookie)
        expect(fresh.status).toBe(200)
        expect(idOf(fresh.cookie!)).not.toBe(victimId)
      }
      expect((await call(app, "GET", "/me", victim)).body).toEqual({ user: "heidi" })
      expect(app.errors).toEqual([])
    } finally {
      await app.close()
      await store.close()
      await server.stop()
    }
  })

  it("while Redis is down, requests reach the error handler with the typed error, then recover", async () => {
    const server = await RedisServer.start()
    const store = await ExpressStore.open(server.settings({ commandTimeout: 500, connectTimeout: 500 }))
    const app = await startApp(store)
    try {
      const cookie = await login(app, "ivan")
      await server.kill()
      // The read fails: express-session hands the error to `next`, and the app answers 503.
      const read = await call(app, "GET", "/me", cookie)
      expect(read).toMatchObject({ status: 503, body: { error: "RedisConnectionError" } })
      // A new session's save fails too (after the response started, so only the handler sees it).
      await call(app, "POST", "/login/judy").catch(() => undefined)
      await eventually(async () => {
        expect(app.errors.length).toBeGreaterThanOrEqual(2)
      })
      for (const error of app.errors) expect(error).toBeInstanceOf(RedisConnectionError)

      await server.restart()
      await eventually(async () => {
        expect(await call(app, "GET", "/me", await login(app, "ivan"))).toMatchObject({ body: { user: "ivan" } })
      })
    } finally {
      await app.close()
      await store.close()
      await server.stop()
    }
  })
})
