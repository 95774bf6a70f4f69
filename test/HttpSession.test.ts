/**
 * The session middleware on a real Node HTTP server, against both store
 * backends: cookies, lazy loading, delta writes, regenerate and destroy,
 * secret rotation, typed data, store failures and hostile cookie headers.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Cookies from "@effect/platform/Cookies"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import { createServer } from "node:http"
import * as HttpSession from "../src/HttpSession.js"
import * as Session from "../src/internal/codec.js"
import * as SessionCookie from "../src/SessionCookie.js"
import { RedisConnectionError } from "../src/SessionError.js"
import * as SessionStore from "../src/SessionStore.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

const secretA = "secret-A-for-tests-0123456789abcdefghij"
const secretB = "secret-B-for-tests-0123456789abcdefghij"
const guard = RedisServer.hangGuard

// ---------------------------------------------------------------------------
// The app under test
// ---------------------------------------------------------------------------

class Boom extends Schema.TaggedError<Boom>()("Boom", {}) {}

const Typed = HttpSession.typed(Schema.Struct({
  n: Schema.Int,
  seen: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  at: Schema.optional(Schema.DateFromString)
}))

const Body = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** Lets a test hold requests after they have loaded their session. */
class Barrier extends Context.Reference<Barrier>()("test/Barrier", {
  defaultValue: () => Effect.void as Effect.Effect<void>
}) {}

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })
const session = HttpSession.HttpSession

const setAll = (data: Record<string, unknown>) =>
  Effect.flatMap(session, (s) => Effect.forEach(Object.entries(data), ([k, v]) => s.set(k, v), { discard: true }))

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/count",
    Effect.gen(function*() {
      const n = yield* Typed.modify("n", (n) => Option.getOrElse(n, () => 0) + 1)
      return json({ n, isNew: yield* (yield* session).isNew })
    })
  ),
  HttpRouter.get("/data", Effect.map(Effect.flatMap(session, (s) => s.data), (data) => json(data))),
  HttpRouter.get("/static", Effect.succeed(HttpServerResponse.text("static"))),
  HttpRouter.get("/id", Effect.map(Effect.flatMap(session, (s) => s.id), (id) => json({ id }))),
  HttpRouter.post(
    "/set",
    Effect.gen(function*() {
      yield* setAll(yield* HttpServerRequest.schemaBodyJson(Body))
      return json(yield* (yield* session).data)
    })
  ),
  HttpRouter.post(
    "/set-after-barrier",
    Effect.gen(function*() {
      const body = yield* HttpServerRequest.schemaBodyJson(Body)
      yield* (yield* session).data
      yield* yield* Barrier
      yield* setAll(body)
      return json({ ok: true })
    })
  ),
  HttpRouter.post(
    "/unset",
    Effect.gen(function*() {
      const { keys } = yield* HttpServerRequest.schemaBodyJson(Schema.Struct({ keys: Schema.Array(Schema.String) }))
      const s = yield* session
      yield* Effect.forEach(keys, (k) => s.unset(k), { discard: true })
      return json(yield* s.data)
    })
  ),
  HttpRouter.post(
    "/clear",
    Effect.flatMap(session, (s) => Effect.as(s.clear, json({ ok: true })))
  ),
  HttpRouter.post(
    "/regenerate",
    Effect.flatMap(session, (s) => Effect.zipRight(s.regenerate, Effect.map(s.data, (data) => json(data))))
  ),
  HttpRouter.post("/destroy", Effect.flatMap(session, (s) => Effect.as(s.destroy, json({ ok: true })))),
  HttpRouter.post(
    "/destroy-then-set",
    Effect.flatMap(session, (s) => Effect.as(Effect.zipRight(s.destroy, s.set("flash", "bye")), json({ ok: true })))
  ),
  HttpRouter.post("/fail", Effect.zipRight(setAll({ failed: true }), Effect.fail(new Boom()))),
  HttpRouter.post("/die", Effect.zipRight(setAll({ died: true }), Effect.dieMessage("handler defect"))),
  HttpRouter.post("/bigint", Effect.as(setAll({ big: 1n }), json({ ok: true }))),
  HttpRouter.post(
    "/typed",
    Effect.gen(function*() {
      const { at, n } = yield* HttpServerRequest.schemaBodyJson(
        Schema.Struct({ n: Schema.Number, at: Schema.optional(Schema.Number) })
      )
      yield* Typed.set("n", n)
      if (at !== undefined) yield* Typed.set("at", new Date(at))
      return json(yield* Typed.data)
    })
  ),
  HttpRouter.get("/typed", Effect.map(Typed.data, (data) => json(data))),
  // The service destructured, as any Effect service can be: its operations need no `this`.
  HttpRouter.post(
    "/destructured",
    Effect.gen(function*() {
      const { get, set, unset } = yield* session
      const n = Option.getOrElse(yield* get("n"), () => 0) as number
      yield* set("n", n + 1)
      yield* set("gone", true)
      yield* unset("gone")
      return json({ n: n + 1, read: yield* get("n") })
    })
  )
)

/** The test app: the router behind the session middleware, with errors mapped after it. */
const appWith = (middleware: HttpSession.Middleware) =>
  middleware(router).pipe(
    Effect.catchTags({
      Boom: () => Effect.succeed(json({ error: "Boom" }, 418)),
      RedisConnectionError: (e) => Effect.succeed(json({ error: e._tag }, 503)),
      RedisCommandError: (e) => Effect.succeed(json({ error: e._tag }, 503)),
      SessionDecodeError: (e) => Effect.succeed(json({ error: e._tag }, 500)),
      SessionSchemaError: (e) =>
        Effect.succeed(json({ error: e._tag, reason: e.reason, field: e.field }, e.reason === "Decode" ? 500 : 400)),
      SessionEncodeError: (e) => Effect.succeed(json({ error: e._tag, field: e.field }, 400)),
      ParseError: () => Effect.succeed(json({ error: "bad body" }, 400)),
      RequestError: () => Effect.succeed(json({ error: "bad body" }, 400)),
      RouteNotFound: () => Effect.succeed(json({ error: "not found" }, 404))
    })
  )

/** Serves the test app with the session middleware and returns a client factory. */
const start = (options: Partial<HttpSession.Input> = {}) =>
  Effect.gen(function*() {
    const middleware = yield* HttpSession.middleware({ secrets: [secretA], ...options })
    const url = yield* Http.serve(appWith(middleware))
    return { url, client: () => Http.makeClient(url) }
  })

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

interface HarnessShape {
  readonly backend: "memory" | "redis"
  /** A store layer; each use builds a fresh store (for Redis: a fresh connection to the same server). */
  readonly store: Layer.Layer<SessionStore.SessionStore>
  readonly redis: RedisServer.RedisServer | undefined
}

class Harness extends Context.Tag("test/HttpSession/Harness")<Harness, HarnessShape>() {}

const memoryHarness = Layer.succeed(Harness, {
  backend: "memory",
  store: SessionStore.layerMemory({ expire: Duration.minutes(20) }),
  redis: undefined
})

const redisHarness = Layer.scoped(
  Harness,
  Effect.map(RedisServer.scoped(), (redis): HarnessShape => ({
    backend: "redis",
    store: Layer.orDie(SessionStore.layer(redis.settings({ expire: "20 minutes" }))),
    redis
  }))
)

/** Runs a test with a store from the harness. */
const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Harness, (h) => Effect.provide(effect, h.store))

const idOf = (signed: string | undefined): string => {
  expect(signed).toBeDefined()
  return signed!.slice(0, signed!.lastIndexOf("."))
}

/** Whether a session exists, asked of the backend itself (for Redis, with a raw client). */
const exists = (id: string) =>
  Effect.gen(function*() {
    const h = yield* Harness
    if (h.redis !== undefined) {
      const redis = h.redis
      return (yield* Effect.promise(() => redis.client().exists(`session:${id}`))) === 1
    }
    const store = yield* SessionStore.SessionStore
    return Option.isSome(yield* Effect.orDie(store.retrieve(id)))
  })

/** Wraps the current store, counting calls per operation. */
const spyStore = Effect.gen(function*() {
  const inner = yield* SessionStore.SessionStore
  const calls = yield* Ref.make<Record<string, number>>({})
  const count = (name: string) => Ref.update(calls, (c) => ({ ...c, [name]: (c[name] ?? 0) + 1 }))
  const store: SessionStore.SessionStore = {
    ...inner,
    create: (data) => Effect.zipRight(count("create"), inner.create(data)),
    retrieve: (id) => Effect.zipRight(count("retrieve"), inner.retrieve(id)),
    flush: (s) => Effect.zipRight(count("flush"), inner.flush(s)),
    destroy: (id) => Effect.zipRight(count("destroy"), inner.destroy(id)),
    touch: (id) => Effect.zipRight(count("touch"), inner.touch(id))
  }
  return { store, calls: Ref.getAndSet(calls, {}) }
})

/** Commands that change session data (a TTL refresh on read is allowed). */
const writeCommands = ["hset", "hdel", "hmset", "del", "unlink", "eval", "evalsha"]

// ---------------------------------------------------------------------------
// Behaviour, on each backend
// ---------------------------------------------------------------------------

const behaviour = (name: string, harness: Layer.Layer<Harness>) =>
  layer(harness, { excludeTestServices: true })(name, (it) => {
    it.scoped("counts visits 1, 2, 3 in one session; a new client starts at 1", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const alice = app.client()
        const first = yield* alice.get("/count")
        expect(first.status).toBe(200)
        expect(first.body).toEqual({ n: 1, isNew: true })
        expect(first.setCookies).toHaveLength(1)
        expect((yield* alice.get("/count")).body).toEqual({ n: 2, isNew: false })
        const signed = alice.jar.get("sid")
        const third = yield* alice.get("/count")
        expect(third.body).toEqual({ n: 3, isNew: false })
        // An existing session that changed keeps its id; the write refreshed its lifetime, so the same
        // cookie (the incoming value, no new signature) comes back with a fresh Max-Age.
        expect(third.setCookies.map((c) => [c.value, c.attributes["max-age"]])).toEqual([[signed, "1200"]])
        expect((yield* app.client().get("/count")).body).toEqual({ n: 1, isNew: true })
        expect(yield* exists(idOf(alice.jar.get("sid")))).toBe(true)
      })))

    it.scoped("works with the service destructured: get, set and unset need no receiver", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const alice = app.client()
        expect((yield* alice.post("/destructured", {})).body).toEqual({
          n: 1,
          read: { _id: "Option", _tag: "Some", value: 1 }
        })
        expect((yield* alice.post("/destructured", {})).body).toMatchObject({ n: 2 })
        expect((yield* alice.get("/data")).body).toEqual({ n: 2 })
      })))

    it.scoped("sets the default cookie attributes: HttpOnly, SameSite=Lax, Path=/, Max-Age = the store's expire, no Secure over http", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const [cookie] = (yield* app.client().get("/count")).setCookies
        expect(cookie!.name).toBe("sid")
        expect(cookie!.attributes).toEqual({ "max-age": "1200", path: "/", httponly: true, samesite: "Lax" })
        expect(SessionCookie.make([Redacted.make(secretA)]).verify(cookie!.value)).toSatisfy(Option.isSome)
      })))

    it.scoped("sets the cookie attributes the options say", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start({
          name: "app.sid",
          domain: "example.test",
          path: "/",
          maxAge: 60,
          httpOnly: false,
          secure: true,
          sameSite: "strict"
        })
        const [cookie] = (yield* app.client().get("/count")).setCookies
        expect(cookie!.name).toBe("app.sid")
        expect(cookie!.attributes).toEqual({
          "max-age": "60",
          domain: "example.test",
          path: "/",
          secure: true,
          samesite: "Strict"
        })
        const session = yield* start({ maxAge: null, sameSite: "none" })
        const [browserSession] = (yield* session.client().get("/count")).setCookies
        expect(browserSession!.attributes).toEqual({ path: "/", httponly: true, samesite: "None" })
      })))

    it.scoped("secure \"auto\": honours X-Forwarded-Proto only when trustProxy is set", () =>
      withStore(Effect.gen(function*() {
        const https = { headers: { "x-forwarded-proto": "https" } }
        const untrusted = yield* start()
        const [plain] = (yield* untrusted.client().request("/count", https)).setCookies
        expect(plain!.attributes.secure).toBeUndefined()
        const trusted = yield* start({ trustProxy: true })
        const [secure] = (yield* trusted.client().request("/count", https)).setCookies
        expect(secure!.attributes.secure).toBe(true)
        const [http] =
          (yield* trusted.client().request("/count", { headers: { "x-forwarded-proto": "http" } })).setCookies
        expect(http!.attributes.secure).toBeUndefined()
      })))

    it.scoped("a handler that never touches the session sends nothing to the store, with or without a cookie", () =>
      withStore(Effect.gen(function*() {
        const h = yield* Harness
        const spy = yield* spyStore
        const app = yield* start().pipe(Effect.provideService(SessionStore.SessionStore, spy.store))
        const client = app.client()
        yield* client.get("/count")
        yield* spy.calls
        const count = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          h.redis === undefined
            ? Effect.map(effect, () => 0)
            : Effect.map(h.redis.countCommands(effect), (c) => c.total)
        const untouched = yield* count(client.get("/static"))
        const anonymous = yield* count(app.client().get("/static"))
        expect(untouched).toBe(0)
        expect(anonymous).toBe(0)
        expect(yield* spy.calls).toEqual({})
      })))

    it.scoped("a read-only request writes nothing and sends no cookie", () =>
      withStore(Effect.gen(function*() {
        const h = yield* Harness
        const app = yield* start()
        const client = app.client()
        yield* client.post("/set", { a: 1 })
        const read = client.get("/data")
        if (h.redis !== undefined) {
          const { commands, value } = yield* h.redis.countCommands(read)
          expect(value.body).toEqual({ a: 1 })
          expect(value.setCookies).toEqual([])
          for (const command of writeCommands) expect(commands[command] ?? 0).toBe(0)
        } else {
          const reply = yield* read
          expect(reply.body).toEqual({ a: 1 })
          expect(reply.setCookies).toEqual([])
        }
      })))

    it.scoped("saveUninitialized false: a new session that was only read is not saved and gets no cookie", () =>
      withStore(Effect.gen(function*() {
        const spy = yield* spyStore
        const app = yield* start().pipe(Effect.provideService(SessionStore.SessionStore, spy.store))
        const reply = yield* app.client().get("/data")
        expect(reply.body).toEqual({})
        expect(reply.setCookies).toEqual([])
        expect(yield* spy.calls).toEqual({})
        // Changing nothing leaves nothing to save either.
        const unset = yield* app.client().post("/unset", { keys: ["a"] })
        expect(unset.setCookies).toEqual([])
      })))

    it.scoped("saveUninitialized true: a new session that was read is saved and gets a cookie", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start({ saveUninitialized: true })
        const client = app.client()
        const reply = yield* client.get("/data")
        expect(reply.setCookies).toHaveLength(1)
        expect(yield* exists(idOf(client.jar.get("sid")))).toBe(true)
        // Still lazy: a handler that does not touch the session creates nothing.
        expect((yield* app.client().get("/static")).setCookies).toEqual([])
      })))

    it.scoped("reading the id of a new session saves it, so the id is real", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const client = app.client()
        const reply = yield* client.get("/id")
        const { id } = reply.body as { id: string }
        expect(Session.isId(id)).toBe(true)
        expect(idOf(client.jar.get("sid"))).toBe(id)
        expect(yield* exists(id)).toBe(true)
        expect((yield* client.get("/id")).body).toEqual({ id })
      })))

    it.scoped("regenerate: a new id carries the data, and the old cookie no longer finds the session", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const client = app.client()
        yield* client.get("/count")
        yield* client.get("/count")
        const oldCookie = client.jar.get("sid")!
        const regenerated = yield* client.post("/regenerate")
        expect(regenerated.body).toEqual({ n: 2 })
        expect(regenerated.setCookies).toHaveLength(1)
        const newCookie = client.jar.get("sid")!
        expect(idOf(newCookie)).not.toBe(idOf(oldCookie))
        expect(yield* exists(idOf(oldCookie))).toBe(false)
        expect(yield* exists(idOf(newCookie))).toBe(true)
        expect((yield* client.get("/count")).body).toEqual({ n: 3, isNew: false })
        // Replaying the old cookie starts afresh.
        const replay = yield* app.client().request("/count", { cookie: `sid=${oldCookie}` })
        expect(replay.body).toEqual({ n: 1, isNew: true })
      })))

    it.scoped("destroy: the session is gone from the store and the cookie is expired", () =>
      withStore(Effect.gen(function*() {
        const spy = yield* spyStore
        const app = yield* start().pipe(Effect.provideService(SessionStore.SessionStore, spy.store))
        const client = app.client()
        yield* client.get("/count")
        const id = idOf(client.jar.get("sid"))
        yield* spy.calls
        const destroyed = yield* client.post("/destroy")
        expect(destroyed.status).toBe(200)
        expect(destroyed.setCookies).toHaveLength(1)
        expect(destroyed.setCookies[0]!.value).toBe("")
        expect(Http.isExpired(destroyed.setCookies[0]!)).toBe(true)
        // Destroying needs no read first.
        expect(yield* spy.calls).toEqual({ destroy: 1 })
        expect(client.jar.has("sid")).toBe(false)
        expect(yield* exists(id)).toBe(false)
        // The old cookie, replayed, finds nothing.
        const replay = yield* app.client().request("/count", {
          cookie: `sid=${SessionCookie.sign(id, Redacted.make(secretA))}`
        })
        expect(replay.body).toEqual({ n: 1, isNew: true })
      })))

    it.scoped("destroy then set: the old session is gone and a new one carries the new data", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const client = app.client()
        yield* client.post("/set", { user: "ann" })
        const oldId = idOf(client.jar.get("sid"))
        const reply = yield* client.post("/destroy-then-set")
        expect(reply.setCookies).toHaveLength(1)
        const newId = idOf(client.jar.get("sid"))
        expect(newId).not.toBe(oldId)
        expect(yield* exists(oldId)).toBe(false)
        expect((yield* client.get("/data")).body).toEqual({ flash: "bye" })
      })))

    it.scoped("unset and clear write only the removal", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const client = app.client()
        yield* client.post("/set", { a: 1, b: { nested: [1, 2] }, $meta: "dollar" })
        expect((yield* client.post("/unset", { keys: ["a"] })).body).toEqual({ b: { nested: [1, 2] }, $meta: "dollar" })
        expect((yield* client.get("/data")).body).toEqual({ b: { nested: [1, 2] }, $meta: "dollar" })
        yield* client.post("/clear")
        expect((yield* client.get("/data")).body).toEqual({})
        // Cleared, but the session itself lives on.
        expect(yield* exists(idOf(client.jar.get("sid")))).toBe(true)
      })))

    it.scoped("secret rotation: a cookie signed with the old secret still works and comes back signed with the new one", () =>
      withStore(Effect.gen(function*() {
        const before = yield* start({ secrets: [secretA] })
        const client = before.client()
        yield* client.get("/count")
        const oldSigned = client.jar.get("sid")!
        const after = yield* start({ secrets: [secretB, secretA] })
        const rotated = Http.makeClient(after.url)
        rotated.jar.set("sid", oldSigned)
        const reply = yield* rotated.get("/count")
        expect(reply.body).toEqual({ n: 2, isNew: false })
        expect(reply.setCookies).toHaveLength(1)
        const newSigned = rotated.jar.get("sid")!
        expect(idOf(newSigned)).toBe(idOf(oldSigned))
        expect(SessionCookie.make([Redacted.make(secretB)]).verify(newSigned)).toSatisfy(Option.isSome)
        // Signed with the current secret now: no further cookie for a read.
        expect((yield* rotated.get("/data")).setCookies).toEqual([])
        // A handler that never touches the session still re-signs (after one read of the session,
        // a near-cache hit as a rule, whose lifetime the cookie's Max-Age follows).
        const untouched = Http.makeClient(after.url)
        untouched.jar.set("sid", oldSigned)
        const resigned = yield* untouched.get("/static")
        expect(resigned.setCookies.map((c) => c.value)).toEqual([newSigned])
        // A retired secret verifies nothing.
        const retired = yield* start({ secrets: [secretB] })
        const stale = yield* Http.makeClient(retired.url).request("/count", { cookie: `sid=${oldSigned}` })
        expect(stale.body).toEqual({ n: 1, isNew: true })
      })))

    it.scoped("rolling: the cookie is sent again on every response, and an untouched session is kept alive", () =>
      withStore(Effect.gen(function*() {
        const spy = yield* spyStore
        const app = yield* start({ rolling: true }).pipe(Effect.provideService(SessionStore.SessionStore, spy.store))
        const client = app.client()
        yield* client.get("/count")
        const signed = client.jar.get("sid")
        expect((yield* client.get("/data")).setCookies.map((c) => c.value)).toEqual([signed])
        yield* spy.calls
        expect((yield* client.get("/static")).setCookies.map((c) => c.value)).toEqual([signed])
        // One read, for the session's own lifetime (the cookie's Max-Age follows it), and one touch.
        expect(yield* spy.calls).toEqual({ retrieve: 1, touch: 1 })
        // Nothing to roll for a client without a session.
        expect((yield* app.client().get("/static")).setCookies).toEqual([])
      })))

    it.scoped("missing, malformed, tampered and forged cookies give a fresh session, never an error", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const client = app.client()
        yield* client.get("/count")
        yield* client.get("/count")
        const good = client.jar.get("sid")!
        const id = idOf(good)
        const forgedSignature = SessionCookie.sign(id, Redacted.make("an-attacker-secret-0123456789abcdefgh"))
        const unknownId = SessionCookie.sign(Session.makeId(), Redacted.make(secretA))
        const notAnId = SessionCookie.sign("admin", Redacted.make(secretA))
        const flipped = good.slice(0, -1) + (good.endsWith("A") ? "B" : "A")
        const headers = [
          "",
          "sid=",
          "sid",
          "sid=garbage",
          `sid=${id}`,
          `sid=${good.slice(0, -5)}`,
          `sid=${flipped}`,
          `sid=${forgedSignature}`,
          `sid=${notAnId}`,
          `sid=${unknownId}`,
          `sid=${good}x`,
          `sid="${good}`,
          `sid=%E0%A4%A; other=1`,
          `constructor=1; __proto__=2; toString=3`,
          ";;;==;=sid;sid==;"
        ]
        for (const cookie of headers) {
          const reply = yield* app.client().request("/count", { cookie })
          expect(reply.status, cookie).toBe(200)
          expect(reply.body, cookie).toEqual({ n: 1, isNew: true })
        }
        // The real session was not disturbed.
        expect((yield* client.get("/count")).body).toEqual({ n: 3, isNew: false })
        // A duplicated cookie: the first one counts, as browsers send the most specific first.
        const dup = yield* app.client().request("/count", { cookie: `sid=${good}; sid=garbage` })
        expect(dup.body).toEqual({ n: 4, isNew: false })
      })))

    it.scoped("two concurrent requests that set different fields of one session both persist", () =>
      withStore(Effect.gen(function*() {
        const arrived = yield* Ref.make(0)
        const bothLoaded = yield* Deferred.make<void>()
        // Each request has read the session before either writes: the race a whole-session write would lose.
        const barrier = Effect.gen(function*() {
          if ((yield* Ref.updateAndGet(arrived, (n) => n + 1)) === 2) yield* Deferred.succeed(bothLoaded, undefined)
          yield* Deferred.await(bothLoaded)
        })
        const app = yield* start().pipe(Effect.provideService(Barrier, barrier))
        const client = app.client()
        yield* client.post("/set", { base: 0 })
        const replies = yield* Effect.all([
          client.post("/set-after-barrier", { a: 1 }),
          client.post("/set-after-barrier", { b: 2 })
        ], { concurrency: 2 }).pipe(guard(20_000, "two concurrent requests"))
        expect(replies.map((r) => r.status)).toEqual([200, 200])
        expect((yield* client.get("/data")).body).toEqual({ base: 0, a: 1, b: 2 })
      })))

    it.scoped("saves and sets the cookie on error responses too", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const client = app.client()
        const failed = yield* client.post("/fail")
        expect(failed.status).toBe(418)
        expect(failed.setCookies).toHaveLength(1)
        expect((yield* client.get("/data")).body).toEqual({ failed: true })
        const died = yield* client.post("/die")
        expect(died.status).toBe(500)
        expect((yield* client.get("/data")).body).toEqual({ failed: true, died: true })
        const other = app.client()
        const diedFirst = yield* other.post("/die")
        expect(diedFirst.status).toBe(500)
        expect(diedFirst.setCookies).toHaveLength(1)
        expect((yield* other.get("/data")).body).toEqual({ died: true })
      })))

    it.scoped("typed data: reads decode, writes encode, defaults apply, a stale field is a typed error", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const client = app.client()
        yield* client.get("/count")
        expect((yield* client.get("/typed")).body).toEqual({ n: 1, seen: false })
        const written = yield* client.post("/typed", { n: 5, at: 0 })
        expect(written.body).toEqual({ n: 5, seen: false, at: "1970-01-01T00:00:00.000Z" })
        // Stored encoded: the Date went in as its string form.
        expect((yield* client.get("/data")).body).toEqual({ n: 5, at: "1970-01-01T00:00:00.000Z" })
        // A value the schema refuses to encode is refused, typed.
        const refused = yield* client.post("/typed", { n: 1.5 })
        expect(refused.status).toBe(400)
        expect(refused.body).toEqual({ error: "SessionSchemaError", reason: "Encode", field: "n" })
        // A stored value that no longer decodes is a typed error for that field only.
        yield* client.post("/set", { n: "five" })
        const stale = yield* client.get("/count")
        expect(stale.status).toBe(500)
        expect(stale.body).toEqual({ error: "SessionSchemaError", reason: "Decode", field: "n" })
        // The app can repair it.
        yield* client.post("/typed", { n: 7 })
        expect((yield* client.get("/count")).body).toEqual({ n: 8, isNew: false })
        // A value without a JSON form is refused, typed.
        const big = yield* client.post("/bigint")
        expect(big.body).toEqual({ error: "SessionEncodeError", field: "big" })
      })))

    it.scoped("the cookie survives the middleware being passed to serve (where it runs after the response)", () =>
      withStore(Effect.gen(function*() {
        const middleware = yield* HttpSession.middleware({ secrets: [secretA] })
        const server = yield* Effect.orDie(NodeHttpServer.make(createServer, { port: 0, host: "127.0.0.1" }))
        yield* HttpServer.serveEffect(router, middleware).pipe(Effect.provideService(HttpServer.HttpServer, server))
        const address = server.address
        if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("expected TCP")
        const client = Http.makeClient(`http://127.0.0.1:${address.port}`)
        expect((yield* client.get("/count")).setCookies).toHaveLength(1)
        expect((yield* client.get("/count")).body).toEqual({ n: 2, isNew: false })
      })))
  })

behaviour("HttpSession over HTTP (memory store)", memoryHarness)
behaviour("HttpSession over HTTP (Redis store, real redis-server)", redisHarness)

// ---------------------------------------------------------------------------
// The service's scope
// ---------------------------------------------------------------------------

describe("HttpSession: the service exists inside the middleware only", () => {
  it.scopedLive("code after the middleware sees no HttpSession, whether the app succeeded or failed", () =>
    Effect.gen(function*() {
      const middleware = yield* HttpSession.middleware({ secrets: [secretA] })
      const outside = (label: string) =>
        Effect.map(
          Effect.serviceOption(HttpSession.HttpSession),
          (found) => json({ label, leaked: Option.isSome(found) })
        )
      const inner = HttpRouter.empty.pipe(
        HttpRouter.get("/ok", Effect.as(setAll({ a: 1 }), json({ ok: true }))),
        HttpRouter.get("/fail", Effect.zipRight(setAll({ a: 1 }), Effect.fail(new Boom())))
      )
      const app = middleware(inner).pipe(
        Effect.zipRight(outside("success")),
        Effect.catchAll(() => outside("failure"))
      )
      const client = Http.makeClient(yield* Http.serve(app))
      expect((yield* client.get("/ok")).body).toEqual({ label: "success", leaked: false })
      expect((yield* client.get("/fail")).body).toEqual({ label: "failure", leaked: false })
    }).pipe(Effect.provide(SessionStore.layerMemory())))
})

// ---------------------------------------------------------------------------
// Store failures
// ---------------------------------------------------------------------------

describe("HttpSession: store failures reach the app's error channel", () => {
  const down = new RedisConnectionError({ reason: "Refused", method: "test", cause: "down" })

  it.scopedLive("a failed read fails the handler with the store's typed error", () =>
    Effect.gen(function*() {
      const memory = yield* SessionStore.makeMemory()
      const broken: SessionStore.SessionStore = {
        ...memory,
        retrieve: () => Effect.fail(down),
        create: () => Effect.fail(down)
      }
      const app = yield* start().pipe(Effect.provideService(SessionStore.SessionStore, broken))
      const client = app.client()
      client.jar.set("sid", SessionCookie.sign(Session.makeId(), Redacted.make(secretA)))
      const reply = yield* client.get("/count")
      expect(reply.status).toBe(503)
      expect(reply.body).toEqual({ error: "RedisConnectionError" })
      // No cookie for a session that was not saved, and the untouched path still works.
      expect(reply.setCookies).toEqual([])
      expect((yield* client.get("/static")).status).toBe(200)
    }))

  it.scopedLive("a failed write at the end of the request reaches the error mapping after the middleware", () =>
    Effect.gen(function*() {
      const memory = yield* SessionStore.makeMemory()
      const created = yield* memory.create({ a: 1 })
      const broken: SessionStore.SessionStore = { ...memory, flush: () => Effect.fail(down) }
      const app = yield* start().pipe(Effect.provideService(SessionStore.SessionStore, broken))
      const client = app.client()
      client.jar.set("sid", SessionCookie.sign(created.id, Redacted.make(secretA)))
      const reply = yield* client.post("/set", { a: 2 })
      expect(reply.status).toBe(503)
      expect(reply.body).toEqual({ error: "RedisConnectionError" })
      expect((yield* client.get("/data")).body).toEqual({ a: 1 })
    }))
})

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

describe("HttpSession options", () => {
  const fieldOf = (input: unknown) => Effect.runSync(Effect.flip(HttpSession.decodeOptions(input)))

  it("fills in the defaults and wraps plain secrets in Redacted", () => {
    const options = Effect.runSync(HttpSession.decodeOptions({ secrets: [secretA] }))
    expect(options).toMatchObject({
      name: "sid",
      path: "/",
      httpOnly: true,
      secure: "auto",
      trustProxy: false,
      sameSite: "lax",
      rolling: false,
      saveUninitialized: false
    })
    expect(options.maxAge).toBeUndefined()
    expect(options.domain).toBeUndefined()
    expect(Redacted.isRedacted(options.secrets[0])).toBe(true)
    expect(Redacted.value(options.secrets[0]!)).toBe(secretA)
    // Decoded options decode again to themselves.
    expect(Effect.runSync(HttpSession.decodeOptions(options))).toEqual(options)
    const withDuration = Effect.runSync(
      HttpSession.decodeOptions({ secrets: [Redacted.make(secretA)], maxAge: "2 hours" })
    )
    expect(withDuration.maxAge).toEqual(Duration.hours(2))
    expect(Effect.runSync(HttpSession.decodeOptions({ secrets: [secretA], maxAge: 90 })).maxAge).toEqual(
      Duration.seconds(90)
    )
  })

  it("rejects bad options with an error that names the field and never shows a secret", () => {
    const cases: ReadonlyArray<readonly [unknown, string]> = [
      [{}, "secrets"],
      [{ secrets: [] }, "secrets"],
      [{ secrets: "x".repeat(40) }, "secrets"],
      [{ secrets: ["short-secret"] }, "secrets.0"],
      [{ secrets: [secretA, "short-secret"] }, "secrets.1"],
      [{ secrets: [secretA], name: "bad name" }, "name"],
      [{ secrets: [secretA], name: "" }, "name"],
      [{ secrets: [secretA], domain: "bad domain;" }, "domain"],
      [{ secrets: [secretA], path: "no-slash" }, "path"],
      [{ secrets: [secretA], path: "/a;b" }, "path"],
      [{ secrets: [secretA], maxAge: -1 }, "maxAge"],
      [{ secrets: [secretA], maxAge: "forever" }, "maxAge"],
      [{ secrets: [secretA], secure: "sometimes" }, "secure"],
      [{ secrets: [secretA], sameSite: "loose" }, "sameSite"],
      [{ secrets: [secretA], httpOnly: "yes" }, "httpOnly"],
      [{ secrets: [secretA], sameSite: "none", secure: false }, "sameSite"],
      [{ secrets: [secretA], name: "__Host-sid", secure: false }, "secure"],
      [{ secrets: [secretA], name: "__Host-sid", path: "/app" }, "path"],
      [{ secrets: [secretA], name: "__Secure-sid", secure: false }, "secure"],
      [{ secrets: [secretA], rollin: true }, "rollin"]
    ]
    for (const [input, field] of cases) {
      const error = fieldOf(input)
      expect(error._tag, JSON.stringify(input)).toBe("SessionConfigError")
      expect(error.field, JSON.stringify(input)).toBe(field)
      expect(error.message).not.toContain("short-secret")
      expect(error.message).not.toContain("x".repeat(40))
    }
    expect(fieldOf({ secrets: [secretA], rollin: true }).detail).toContain("unknown option")
  })

  it.effect("middleware fails typed, without throwing, on bad options", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(HttpSession.middleware({ secrets: ["too short"] }))
      expect(error._tag).toBe("SessionConfigError")
      expect(error.field).toBe("secrets.0")
    }))

  it.effect("reads the options from Config under HTTP_SESSION_", () =>
    Effect.gen(function*() {
      const options = yield* HttpSession.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(
        new Map([
          ["HTTP_SESSION_SECRETS", `${secretB},${secretA}`],
          ["HTTP_SESSION_NAME", "app"],
          ["HTTP_SESSION_MAX_AGE", "session"],
          ["HTTP_SESSION_SECURE", "true"],
          ["HTTP_SESSION_SAME_SITE", "strict"],
          ["HTTP_SESSION_ROLLING", "true"]
        ]),
        { pathDelim: "_" }
      )))
      expect(options.secrets.map(Redacted.value)).toEqual([secretB, secretA])
      expect(options).toMatchObject({ name: "app", maxAge: null, secure: true, sameSite: "strict", rolling: true })
      const error = yield* Effect.flip(HttpSession.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(
        new Map([["HTTP_SESSION_SECRETS", "short"]]),
        { pathDelim: "_" }
      ))))
      expect(String(error)).toContain("HTTP_SESSION.SECRETS")
      expect(String(error)).not.toContain("short,")
      const auto = yield* HttpSession.configWithPrefix("WEB").pipe(Effect.withConfigProvider(ConfigProvider.fromMap(
        new Map([["WEB_SECRETS", secretA], ["WEB_SECURE", "auto"], ["WEB_MAX_AGE", "3600"]]),
        { pathDelim: "_" }
      )))
      expect(auto).toMatchObject({ secure: "auto", maxAge: Duration.hours(1) })
    }))
})

// ---------------------------------------------------------------------------
// Hostile cookie headers
// ---------------------------------------------------------------------------

/** Header-safe text: no CR, LF or NUL, nothing above U+00FF (what fetch and Node accept in a header). */
const headerChar = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }),
  fc.integer({ min: 0x80, max: 0xff }),
  fc.constant(0x09)
).map((c) => String.fromCharCode(c))
const headerText = (maxLength: number) => fc.string({ unit: headerChar, maxLength })

const cookieName = fc.oneof(
  fc.constantFrom("sid", "SID", "sid ", " sid", "constructor", "__proto__", "toString", "hasOwnProperty"),
  fc.string({ unit: fc.constantFrom(..."abcsid_-.$%=;\" "), maxLength: 6 })
)

/** A signed cookie of an existing session, mutated the way attackers and broken clients do. */
const tampered = (good: string) =>
  fc.oneof(
    fc.nat({ max: good.length }).map((n) => good.slice(0, n)),
    fc.tuple(fc.nat({ max: good.length - 1 }), headerChar).map(([i, c]) => good.slice(0, i) + c + good.slice(i + 1)),
    headerText(8).map((s) => good + s),
    headerText(8).map((s) => s + good),
    fc.constant(good.replace(".", "")),
    fc.constant(encodeURIComponent(good).replace(/\./g, "%2E")),
    fc.constant(`"${good}"`),
    fc.tuple(fc.nat({ max: 42 }), fc.nat({ max: 42 })).map(([i, j]) => {
      const chars = [...good]
      ;[chars[i], chars[j]] = [chars[j]!, chars[i]!]
      return chars.join("")
    })
  )

const cookieHeader = (good: string) =>
  fc.oneof(
    headerText(200),
    fc.tuple(
      fc.array(fc.tuple(cookieName, fc.oneof(headerText(60), tampered(good))), { maxLength: 6 }),
      fc.constantFrom("; ", ";", " ; ", ",")
    ).map(([pairs, separator]) => pairs.map(([name, value]) => `${name}=${value}`).join(separator)),
    tampered(good).map((value) => `sid=${value}`)
  )

describe("HttpSession: arbitrary cookie headers never produce a 5xx", () => {
  it("10,000 headers in-process (toWebHandler): always 200, a tampered cookie always gives a fresh session", async () => {
    const app = appWith(Effect.runSync(HttpSession.middleware({ secrets: [secretA] })))
    const { dispose, handler } = HttpApp.toWebHandlerLayer(app, SessionStore.layerMemory())
    try {
      const first = await handler(new Request("http://localhost/count"))
      const good = Http.parseSetCookie(first.headers.getSetCookie()[0]!).value
      const request = async (cookie: string) => {
        const response = await handler(new Request("http://localhost/count", { headers: { cookie } }))
        return { status: response.status, body: await response.json() as { n: number; isNew: boolean } }
      }
      await fc.assert(
        fc.asyncProperty(cookieHeader(good), async (cookie) => {
          const { body, status } = await request(cookie)
          expect(status).toBe(200)
          expect(body.n).toBeGreaterThanOrEqual(1)
        }),
        { numRuns: 10_000 }
      )
      await fc.assert(
        // Quotes, surrounding blanks and percent-encoding spell the same cookie value, so those are not tampering.
        fc.asyncProperty(
          tampered(good).filter((v) => Cookies.parseHeader(`sid=${v}`)["sid"] !== good),
          async (value) => {
            const { body, status } = await request(`sid=${value}`)
            expect(status).toBe(200)
            expect(body).toEqual({ n: 1, isNew: true })
          }
        ),
        { numRuns: 1_000 }
      )
    } finally {
      await dispose()
    }
  })

  layer(redisHarness, { excludeTestServices: true })("over a real server and Redis", (it) => {
    it.scoped("300 arbitrary headers over TCP", () =>
      withStore(Effect.gen(function*() {
        const app = yield* start()
        const client = app.client()
        yield* client.get("/count")
        const good = client.jar.get("sid")!
        const samples = fc.sample(cookieHeader(good), { numRuns: 300, seed: 42 })
        for (const cookie of samples) {
          const reply = yield* app.client().request("/count", { cookie })
          expect(reply.status, cookie).toBe(200)
        }
      })))
  })
})

// With `rolling`, a request that never touches its session re-sends its cookie. It did so without
// knowing whether the session still existed: after a regenerate on another instance, such a response
// could replace the new cookie with the dead one (issue 19, point 9).
describe("HttpSession: rolling never re-sends a cookie for a session that is gone", () => {
  layer(redisHarness, { excludeTestServices: true })("two instances on one Redis", (it) => {
    it.scoped("after a regenerate or a destroy on one instance, the other sends no cookie for the old id", () =>
      Effect.gen(function*() {
        const h = yield* Harness
        const instance = (options: Partial<HttpSession.Input>) =>
          Effect.flatMap(Layer.build(h.store), (store) => Effect.provide(start(options), store))
        const a = yield* instance({ rolling: true })
        const b = yield* instance({ rolling: true })
        const client = a.client()
        yield* client.get("/count")
        const old = client.jar.get("sid")!
        // Moved to a new id on A; B never read the old one, so it asks Redis.
        yield* client.post("/regenerate")
        const current = client.jar.get("sid")!
        expect(idOf(current)).not.toBe(idOf(old))
        const stale = yield* b.client().request("/static", { cookie: `sid=${old}` })
        expect(stale.setCookies).toEqual([])
        // The live one is rolled, on either instance.
        for (const app of [a, b]) {
          const rolled = yield* app.client().request("/static", { cookie: `sid=${current}` })
          expect(rolled.setCookies.map((c) => c.value)).toEqual([current])
        }
        // Destroyed on A: B does not roll it either.
        yield* client.post("/destroy")
        expect((yield* b.client().request("/static", { cookie: `sid=${current}` })).setCookies).toEqual([])
        // Nor does a cookie signed with an older secret come back re-signed for a dead id.
        const rotating = yield* Effect.flatMap(
          Layer.build(h.store),
          (store) => Effect.provide(start({ secrets: [secretB, secretA] }), store)
        )
        expect((yield* rotating.client().request("/static", { cookie: `sid=${old}` })).setCookies).toEqual([])
      }))
  })
})
