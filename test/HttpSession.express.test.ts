/**
 * One app moving from Express to Effect route by route: an Express half
 * (express 5 + express-session + ExpressStore) and an Effect half
 * (HttpSession with `cookieFormat: "express-session"`) on one store share one
 * cookie and one session, on a real redis-server.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import express from "express"
import session from "express-session"
import { createHmac } from "node:crypto"
import type { Server } from "node:http"
import { ExpressStore } from "../src/express.js"
import * as HttpSession from "../src/HttpSession.js"
import * as SessionCookie from "../src/SessionCookie.js"
import * as SessionStore from "../src/SessionStore.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

const oldSecret = "old-secret-shared-by-both-halves-0123456789"
const newSecret = "new-secret-shared-by-both-halves-0123456789"

type Fields = Record<string, unknown>

/** The Express half: its routes read and write `req.session` fields. */
const startExpress = (store: session.Store, secrets: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ url: string; server: Server }>((resolve) => {
        const app = express()
        app.use(session({ store, secret: [...secrets], resave: false, saveUninitialized: false }))
        app.post("/express/set/:field/:value", (req, res) => {
          ;(req.session as unknown as Fields)[req.params.field] = req.params.value
          res.json({ ok: true })
        })
        app.get("/express/data", (req, res) => {
          const { cookie: _cookie, ...data } = req.session as unknown as Fields
          res.json(data)
        })
        const server = app.listen(0, "127.0.0.1", () => {
          const address = server.address()
          resolve({
            url: `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`,
            server
          })
        })
      })
    ),
    ({ server }) =>
      Effect.promise(() => new Promise<void>((done) => (server.closeAllConnections(), server.close(() => done()))))
  )

/** The Effect half, with express-session's cookie. */
const effectRouter = HttpRouter.empty.pipe(
  HttpRouter.post(
    "/effect/set/:field/:value",
    Effect.gen(function*() {
      const { field, value } = yield* HttpRouter.params
      yield* (yield* HttpSession.HttpSession).set(field!, value)
      return HttpServerResponse.unsafeJson({ ok: true })
    })
  ),
  HttpRouter.get(
    "/effect/data",
    Effect.gen(function*() {
      const data = yield* (yield* HttpSession.HttpSession).data
      const { cookie: _cookie, ...rest } = data
      return HttpServerResponse.unsafeJson(rest)
    })
  ),
  HttpRouter.get(
    "/effect/isNew",
    Effect.map(
      Effect.flatMap(HttpSession.HttpSession, (s) => s.isNew),
      (isNew) => HttpServerResponse.unsafeJson({ isNew })
    )
  )
)

const setup = (secrets: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const server = yield* RedisServer.scoped()
    const shared = yield* Effect.acquireRelease(
      Effect.promise(() => SessionStore.open(server.settings())),
      (store) => Effect.promise(() => store.close())
    )
    const expressHalf = yield* startExpress(ExpressStore.fromStore(shared), secrets)
    const middleware = yield* HttpSession.middleware({
      secrets: [...secrets],
      name: "connect.sid",
      cookieFormat: "express-session"
    })
    const effectUrl = yield* Http.serve(middleware(effectRouter)).pipe(
      Effect.provideService(SessionStore.SessionStore, shared.store)
    )
    // One browser: the same cookie jar for both halves, as on one origin.
    const express = Http.makeClient(expressHalf.url)
    const effect = Http.makeClient(effectUrl)
    const share = (from: Http.Client, to: Http.Client) => {
      to.jar.clear()
      for (const [name, value] of from.jar) to.jar.set(name, value)
    }
    return { server, shared, express, effect, share }
  })

describe("HttpSession with cookieFormat \"express-session\" beside an Express half", () => {
  it.scopedLive("both halves read and write one session through one cookie", () =>
    Effect.gen(function*() {
      const t = yield* setup([newSecret])
      yield* t.express.post("/express/set/user/ada")
      // express-session's own cookie, as it spells it.
      expect(t.express.jar.get("connect.sid")).toMatch(/^s:[A-Za-z0-9_-]{32}\.[A-Za-z0-9+/]{43}$/)
      t.share(t.express, t.effect)
      expect((yield* t.effect.get("/effect/isNew")).body).toEqual({ isNew: false })
      expect((yield* t.effect.get("/effect/data")).body).toEqual({ user: "ada" })
      const before = t.effect.jar.get("connect.sid")
      const written = yield* t.effect.post("/effect/set/theme/dark")
      // The Effect half kept the same id: the same cookie, in express-session's spelling, comes back
      // with a fresh Max-Age (the write refreshed the session's lifetime).
      expect(written.setCookies.map((c) => c.value)).toEqual([before])
      expect((yield* t.express.get("/express/data")).body).toEqual({ user: "ada", theme: "dark" })
    }))

  it.scopedLive("a session started in the Effect half works in the Express half", () =>
    Effect.gen(function*() {
      const t = yield* setup([newSecret])
      const first = yield* t.effect.post("/effect/set/cart/apple")
      expect(first.setCookies).toHaveLength(1)
      t.share(t.effect, t.express)
      expect((yield* t.express.get("/express/data")).body).toEqual({ cart: "apple" })
    }))

  it.scopedLive("100 concurrent writes of different fields, split between the halves: none lost", () =>
    Effect.gen(function*() {
      const t = yield* setup([newSecret])
      yield* t.express.post("/express/set/start/1")
      t.share(t.express, t.effect)
      yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => (i % 2 === 0 ? t.express : t.effect).post(`/${i % 2 === 0 ? "express" : "effect"}/set/f${i}/${i}`),
        { concurrency: "unbounded", discard: true }
      )
      const data = (yield* t.effect.get("/effect/data")).body as Fields
      const lost = Array.from({ length: 100 }, (_, i) => `f${i}`).filter((field) => !(field in data))
      expect(lost).toEqual([])
    }))

  it.scopedLive("secret rotation across the halves: an old-secret cookie works in both and is re-signed", () =>
    Effect.gen(function*() {
      const t = yield* setup([newSecret, oldSecret])
      const created = yield* Effect.promise(() => t.shared.create({ user: "grace" }))
      // A cookie as the Express app signed it before the rotation.
      const old = SessionCookie.sign(created.id, Redacted.make(oldSecret), "express-session")
      t.effect.jar.set("connect.sid", encodeURIComponent(old))
      t.express.jar.set("connect.sid", encodeURIComponent(old))
      expect((yield* t.express.get("/express/data")).body).toEqual({ user: "grace" })
      const reply = yield* t.effect.get("/effect/data")
      expect(reply.body).toEqual({ user: "grace" })
      // Re-signed with the new secret, readable by express-session's own signer.
      const resigned = decodeURIComponent(reply.setCookies[0]!.value)
      const expected = createHmac("sha256", newSecret).update(created.id).digest("base64").replace(/=+$/, "")
      expect(resigned).toBe(`s:${created.id}.${expected}`)
    }))

  it.scopedLive("forged, unsigned and truncated cookies start a fresh session, never an error", () =>
    Effect.gen(function*() {
      const t = yield* setup([newSecret])
      const created = yield* Effect.promise(() => t.shared.create({ user: "eve" }))
      const good = SessionCookie.sign(created.id, Redacted.make(newSecret), "express-session")
      const forged = [
        `s:${created.id}`,
        created.id,
        good.slice(0, -1),
        `${good}x`,
        `s:${created.id}.${"A".repeat(43)}`,
        SessionCookie.sign(created.id, Redacted.make("not-the-secret-0123456789abcdefghijk"), "express-session"),
        SessionCookie.sign(created.id, Redacted.make(newSecret), "native")
      ]
      for (const value of forged) {
        t.effect.jar.set("connect.sid", encodeURIComponent(value))
        const reply = yield* t.effect.get("/effect/isNew")
        expect(reply.status).toBe(200)
        expect(reply.body).toEqual({ isNew: true })
      }
      expect(Option.isSome(SessionCookie.verify(good, [Redacted.make(newSecret)], "express-session"))).toBe(true)
    }))
})
