/**
 * The cookie follows the session's lifetime, and each session can have its
 * own ("remember me"). Clients that honour `Max-Age` as browsers do talk to a
 * real Node HTTP server: on the memory backend under a TestClock (many
 * lifetimes in no time), and on a real redis-server with short lifetimes.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as HttpSession from "../src/HttpSession.js"
import * as Session from "../src/internal/codec.js"
import * as SessionStore from "../src/SessionStore.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

const secret = "lifetime-test-secret-0123456789abcdefghij"
const guard = RedisServer.hangGuard

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

/**
 * `expire` left out: the lifetime is not touched; `null`: back to the store's; a number: seconds; a
 * string: a duration such as "2 hours" (unchecked here: the session checks it).
 */
const Lifetime = Schema.Struct({ expire: Schema.optional(Schema.NullOr(Schema.Union(Schema.Number, Schema.String))) })
const lifetime = (expire: number | string | null): Duration.DurationInput | undefined =>
  (expire ?? undefined) as Duration.DurationInput | undefined

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/read",
    Effect.gen(function*() {
      const session = yield* HttpSession.HttpSession
      return json({
        isNew: yield* session.isNew,
        data: yield* session.data,
        user: Option.getOrNull(yield* session.user)
      })
    })
  ),
  HttpRouter.get(
    "/count",
    Effect.gen(function*() {
      const session = yield* HttpSession.HttpSession
      const n = (Option.getOrElse(yield* session.get("n"), () => 0) as number) + 1
      yield* session.set("n", n)
      return json({ n, isNew: yield* session.isNew })
    })
  ),
  HttpRouter.get("/static", Effect.succeed(HttpServerResponse.text("static"))),
  HttpRouter.post(
    "/login/:name",
    Effect.gen(function*() {
      const { name } = yield* HttpRouter.schemaPathParams(Schema.Struct({ name: Schema.String }))
      const { expire } = yield* HttpServerRequest.schemaBodyJson(Lifetime)
      const session = yield* HttpSession.HttpSession
      yield* expire === undefined ? session.login(name) : session.login(name, { expire: lifetime(expire) })
      return json({ user: name })
    })
  ),
  HttpRouter.post(
    "/expire",
    Effect.gen(function*() {
      const { expire } = yield* HttpServerRequest.schemaBodyJson(Lifetime)
      yield* (yield* HttpSession.HttpSession).setExpire(lifetime(expire ?? null))
      return json({ ok: true })
    }).pipe(Effect.catchTag("SessionEncodeError", (e) => Effect.succeed(json({ error: e._tag, field: e.field }, 400))))
  )
)

/** Serves the router with the session middleware on `store`; clients honour Max-Age. */
const serve = (store: SessionStore.SessionStore, options: Partial<HttpSession.Input> = {}) =>
  Effect.gen(function*() {
    const middleware = yield* HttpSession.middleware({ secrets: [secret], ...options })
    const url = yield* Http.serve(middleware(router)).pipe(Effect.provideService(SessionStore.SessionStore, store))
    return () => Http.makeClient(url, { honourMaxAge: true })
  })

const idOf = (client: Http.Client): string => {
  const signed = client.jar.get("sid")
  expect(signed).toBeDefined()
  return signed!.slice(0, signed!.lastIndexOf("."))
}

const maxAgeOf = (reply: Http.Reply): number | undefined => {
  const cookie = reply.setCookies.find((c) => c.name === "sid")
  const maxAge = cookie?.attributes["max-age"]
  return typeof maxAge === "string" ? Number(maxAge) : undefined
}

const memoryStore = (options: SessionStore.MemoryOptions) =>
  Effect.map(Layer.build(SessionStore.layerMemory(options)), Context.get(SessionStore.SessionStore))

const redisStore = (server: RedisServer.RedisServer, settings: Record<string, unknown> = {}) =>
  Effect.map(
    Layer.build(Layer.orDie(SessionStore.layer(server.settings(settings)))),
    Context.get(SessionStore.SessionStore)
  )

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

// ---------------------------------------------------------------------------------------------
// Memory backend, TestClock: time moves only when the test moves it.

describe("the cookie follows the session's lifetime (memory store, TestClock)", () => {
  it.scoped("an active client keeps its session across several expire periods, reading or writing; an idle one loses it", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore({ expire: "10 seconds" })
      const client = yield* serve(store)
      const [reader, writer, idle] = [client(), client(), client()]
      for (const c of [reader, writer, idle]) {
        const first = yield* c.get("/count")
        expect(maxAgeOf(first)).toBe(10)
      }
      const ids = [idOf(reader), idOf(writer), idOf(idle)]
      // 45 s: four and a half lifetimes, a request every 1.5 s (more than a tenth of the lifetime).
      for (let i = 0; i < 30; i++) {
        yield* TestClock.adjust("1500 millis")
        const read = yield* reader.get("/read")
        expect(read.body, `read ${i}`).toMatchObject({ isNew: false, data: { n: 1 } })
        // Each of these reads refreshed the lifetime: the same cookie came back with a fresh Max-Age.
        expect(read.setCookies.map((c) => [c.value.split(".")[0], c.attributes["max-age"]])).toEqual([[ids[0], "10"]])
        const wrote = yield* writer.get("/count")
        expect(wrote.body).toEqual({ n: i + 2, isNew: false })
        expect(maxAgeOf(wrote)).toBe(10)
      }
      expect([idOf(reader), idOf(writer)]).toEqual(ids.slice(0, 2))
      // The idle client's browser dropped its cookie 10 s after it got it; the store ended the session.
      expect(yield* idle.holds("sid")).toBe(false)
      expect(yield* store.retrieve(ids[2]!)).toEqual(Option.none())
      expect((yield* idle.get("/read")).body).toMatchObject({ isNew: true, data: {} })
    }))

  it.scoped("reads within a tenth of the lifetime of the last refresh send no cookie; the next one after it does", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore({ expire: "100 seconds" })
      const client = (yield* serve(store))()
      yield* client.get("/count")
      for (let i = 0; i < 9; i++) {
        yield* TestClock.adjust("1 second")
        expect((yield* client.get("/read")).setCookies).toEqual([])
      }
      yield* TestClock.adjust("1 second")
      expect(maxAgeOf(yield* client.get("/read"))).toBe(100)
      expect((yield* client.get("/read")).setCookies).toEqual([])
    }))

  it.scoped("remember me: login with a lifetime of its own; the cookie follows it, and an idle remembered user stays", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore({ expire: "10 seconds" })
      const client = yield* serve(store)
      const [remembered, plain] = [client(), client()]
      expect(maxAgeOf(yield* remembered.post("/login/ada", { expire: 60 }))).toBe(60)
      expect(maxAgeOf(yield* plain.post("/login/bob", {}))).toBe(10)
      expect(Duration.toSeconds((yield* store.retrieve(idOf(remembered))).pipe(Option.getOrThrow).expire!)).toBe(60)
      // Idle for 30 s: past the store's lifetime, within the remembered one.
      yield* TestClock.adjust("30 seconds")
      expect(yield* plain.holds("sid")).toBe(false)
      expect((yield* plain.get("/read")).body).toMatchObject({ isNew: true, user: null })
      expect((yield* remembered.get("/read")).body).toMatchObject({ isNew: false, user: "ada" })
      // Idle past the remembered lifetime too: gone, in the browser and in the store.
      const id = idOf(remembered)
      yield* TestClock.adjust("61 seconds")
      expect(yield* remembered.holds("sid")).toBe(false)
      expect(yield* store.retrieve(id)).toEqual(Option.none())
    }))

  it.scoped("setExpire changes the lifetime of the current session, and undefined goes back to the store's", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore({ expire: "10 seconds" })
      const client = (yield* serve(store))()
      yield* client.get("/count")
      const id = idOf(client)
      const longer = yield* client.post("/expire", { expire: 3600 })
      expect(maxAgeOf(longer)).toBe(3600)
      expect(idOf(client)).toBe(id)
      expect(Duration.toHours(Option.getOrThrow(yield* store.retrieve(id)).expire!)).toBe(1)
      // The data was not rewritten, the session not replaced.
      expect((yield* client.get("/read")).body).toMatchObject({ isNew: false, data: { n: 1 } })
      const back = yield* client.post("/expire", { expire: null })
      expect(maxAgeOf(back)).toBe(10)
      expect(Option.getOrThrow(yield* store.retrieve(id)).expire).toBeUndefined()
      // A string works as for the setting; a lifetime that is not one is refused, typed.
      expect(maxAgeOf(yield* client.post("/expire", { expire: "2 hours" }))).toBe(7200)
      for (const expire of [-5, 0, "forever"]) {
        const refused = yield* client.post("/expire", { expire })
        expect(refused.status).toBe(400)
        expect(refused.body).toEqual({ error: "SessionEncodeError", field: "expire" })
        expect(refused.setCookies).toEqual([])
      }
      expect(Duration.toHours(Option.getOrThrow(yield* store.retrieve(id)).expire!)).toBe(2)
    }))

  it.scoped("absoluteExpire caps a remembered session: Max-Age never reaches past the deadline, and activity does not save it", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore({ expire: "10 seconds", absoluteExpire: "20 seconds" })
      const client = (yield* serve(store))()
      const login = yield* client.post("/login/ada", { expire: "30 days" })
      expect(maxAgeOf(login)).toBe(20)
      const id = idOf(client)
      for (let elapsed = 3; elapsed < 20; elapsed += 3) {
        yield* TestClock.adjust("3 seconds")
        const reply = yield* client.get("/count")
        expect(reply.body).toMatchObject({ isNew: false })
        expect(maxAgeOf(reply)).toBeLessThanOrEqual(20 - elapsed)
      }
      yield* TestClock.adjust("3 seconds")
      expect(yield* client.holds("sid")).toBe(false)
      expect(yield* store.retrieve(id)).toEqual(Option.none())
    }))

  it.scoped("an explicit maxAge keeps its meaning: a fixed Max-Age, sent with a new id only", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore({ expire: "10 seconds" })
      const client = (yield* serve(store, { maxAge: 60 }))()
      expect(maxAgeOf(yield* client.post("/login/ada", { expire: 3600 }))).toBe(60)
      yield* TestClock.adjust("2 seconds")
      expect((yield* client.get("/count")).setCookies).toEqual([])
      expect((yield* client.post("/expire", { expire: 7200 })).setCookies).toEqual([])
      // The lifetime is still the session's own.
      expect(Duration.toHours(Option.getOrThrow(yield* store.retrieve(idOf(client))).expire!)).toBe(2)
    }))

  it.scoped("rolling: every response carries the cookie, with the session's own lifetime, untouched handlers too", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore({ expire: "10 seconds" })
      const client = (yield* serve(store, { rolling: true }))()
      expect(maxAgeOf(yield* client.post("/login/ada", { expire: 3600 }))).toBe(3600)
      expect(maxAgeOf(yield* client.get("/read"))).toBe(3600)
      expect(maxAgeOf(yield* client.get("/static"))).toBe(3600)
      // The untouched request kept the session alive too.
      yield* TestClock.adjust("3000 seconds")
      expect(maxAgeOf(yield* client.get("/static"))).toBe(3600)
      yield* TestClock.adjust("3000 seconds")
      expect((yield* client.get("/read")).body).toMatchObject({ isNew: false, user: "ada" })
    }))

  it.scoped("secret rotation re-signs an untouched session's cookie with that session's own lifetime", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore({ expire: "10 seconds" })
      const before = (yield* serve(store))()
      yield* before.post("/login/ada", { expire: 3600 })
      const middleware = yield* HttpSession.middleware({ secrets: ["a-newer-secret-0123456789abcdefghijklmn", secret] })
      const url = yield* Http.serve(middleware(router)).pipe(Effect.provideService(SessionStore.SessionStore, store))
      const after = Http.makeClient(url, { honourMaxAge: true })
      after.jar.set("sid", before.jar.get("sid")!)
      const resigned = yield* after.get("/static")
      expect(maxAgeOf(resigned)).toBe(3600)
      expect(resigned.setCookies[0]!.value).not.toBe(before.jar.get("sid"))
    }))
})

// ---------------------------------------------------------------------------------------------
// Redis: real lifetimes, kept short.

describe("the cookie follows the session's lifetime (Redis store, real redis-server)", () => {
  it.scopedLive("an active client keeps its session across several expire periods, reading or writing; an idle one loses it", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      const store = yield* redisStore(server, { expire: 2 })
      const client = yield* serve(store)
      const [reader, writer, idle] = [client(), client(), client()]
      for (const c of [reader, writer, idle]) expect(maxAgeOf(yield* c.get("/count"))).toBe(2)
      const ids = [idOf(reader), idOf(writer), idOf(idle)]
      const started = Date.now()
      // Three lifetimes and more, a request every 300 ms: each outlives the cookie it started with.
      let requests = 0
      while (Date.now() - started < 6_500) {
        yield* Effect.sleep("300 millis")
        const read = yield* reader.get("/read")
        expect(read.body, `after ${Date.now() - started} ms`).toMatchObject({ isNew: false, data: { n: 1 } })
        const wrote = yield* writer.get("/count")
        expect(wrote.body, `after ${Date.now() - started} ms`).toMatchObject({ isNew: false })
        requests++
      }
      expect(requests).toBeGreaterThan(6)
      expect([idOf(reader), idOf(writer)]).toEqual(ids.slice(0, 2))
      // The idle one: Redis expired it, and the client's cookie, which said Max-Age=2, is gone too.
      expect(yield* promise(() => raw.exists(`session:${ids[2]}`))).toBe(0)
      expect(yield* idle.holds("sid")).toBe(false)
      expect((yield* idle.get("/read")).body).toMatchObject({ isNew: true, data: {} })
    }).pipe(guard(60_000, "active and idle clients")))

  it.scopedLive("a cached read that does not refresh sends no Set-Cookie and no Redis command; one that refreshes re-sends the same cookie", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      // A tenth of 3 s: a read within 300 ms of the last refresh is a plain hit.
      const store = yield* redisStore(server, { expire: 3 })
      const client = (yield* serve(store))()
      yield* client.get("/count")
      const signed = client.jar.get("sid")
      const id = idOf(client)
      for (let i = 0; i < 3; i++) {
        const { total, value } = yield* server.countCommands(client.get("/read"))
        expect(value.body).toMatchObject({ isNew: false })
        expect(value.setCookies).toEqual([])
        expect(total).toBe(0)
      }
      // Due: the read refreshes the lifetime (one MULTI) and the cookie comes back as it was.
      yield* RedisServer.eventually(
        Effect.flatMap(promise(() => raw.pttl(`session:${id}`)), (pttl) => pttl < 2600 ? Effect.void : Effect.fail("")),
        { intervalMs: 25 }
      )
      const { commands, value } = yield* server.countCommands(client.get("/read"))
      expect(commands).toEqual({ evalsha: 1, hexists: 1, pexpire: 1, hget: 1 })
      expect(value.setCookies.map((c) => [c.value, c.attributes["max-age"]])).toEqual([[signed, "3"]])
      expect(yield* promise(() => raw.pttl(`session:${id}`))).toBeGreaterThan(2600)
      const after = yield* server.countCommands(client.get("/read"))
      expect(after.total).toBe(0)
      expect(after.value.setCookies).toEqual([])
    }).pipe(guard(30_000, "refresh signal")))

  it.scopedLive("setExpire survives a restart of the app and is seen by a second instance", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      const key = (id: string) => `session:${id}`
      // Instance A, in a scope of its own so that it can be stopped.
      const scopeA = yield* Scope.make()
      const storeA = yield* redisStore(server, { expire: 60 }).pipe(Scope.extend(scopeA))
      const a = yield* serve(storeA).pipe(Scope.extend(scopeA))
      const browser = a()
      yield* browser.post("/login/ada", {})
      const remember = yield* browser.post("/expire", { expire: 86_400 })
      expect(maxAgeOf(remember)).toBe(86_400)
      const id = idOf(browser)
      expect(yield* promise(() => raw.hget(key(id), Session.expireField))).toBe("86400000")
      expect(yield* promise(() => raw.pttl(key(id)))).toBeGreaterThan(60_000)

      // Instance B on the same Redis: its refresh uses the session's lifetime, and so does its cookie.
      const storeB = yield* redisStore(server, { expire: 60 })
      const b = yield* serve(storeB)
      const sameBrowser = b()
      sameBrowser.jar.set("sid", browser.jar.get("sid")!)
      yield* promise(() => raw.pexpire(key(id), 5000))
      const refreshed = yield* sameBrowser.get("/read")
      expect(refreshed.body).toMatchObject({ isNew: false, user: "ada" })
      expect(maxAgeOf(refreshed)).toBe(86_400)
      expect(yield* promise(() => raw.pttl(key(id)))).toBeGreaterThan(86_000_000)
      expect(Duration.toDays(Option.getOrThrow(yield* storeB.retrieve(id)).expire!)).toBe(1)

      // B changes it; A, which holds the session in its near-cache, sees the change.
      yield* storeA.retrieve(id)
      expect(maxAgeOf(yield* sameBrowser.post("/expire", { expire: 7200 }))).toBe(7200)
      yield* RedisServer.eventually(
        Effect.flatMap(
          storeA.retrieve(id),
          (found) => Duration.toHours(Option.getOrThrow(found).expire!) === 2 ? Effect.void : Effect.fail("stale")
        ),
        { timeoutMs: 10_000, intervalMs: 10 }
      )

      // A restarts: a new store, a new app, the same Redis. The lifetime is still the session's own.
      yield* Scope.close(scopeA, Exit.void)
      const storeA2 = yield* redisStore(server, { expire: 60 })
      const restarted = (yield* serve(storeA2))()
      restarted.jar.set("sid", browser.jar.get("sid")!)
      yield* promise(() => raw.pexpire(key(id), 5000))
      const afterRestart = yield* restarted.get("/read")
      expect(afterRestart.body).toMatchObject({ isNew: false, user: "ada" })
      expect(maxAgeOf(afterRestart)).toBe(7200)
      expect(yield* promise(() => raw.pttl(key(id)))).toBeGreaterThan(7_000_000)
      const [info] = yield* storeA2.sessionsOf("ada")
      expect(info!.expiresAt).toBeGreaterThan(Date.now() + 7_000_000)
    }).pipe(guard(60_000, "restart and second instance")))

  it.scopedLive("absoluteExpire caps a remembered session: its TTL and Max-Age never reach past the deadline", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const raw = server.client()
      const store = yield* redisStore(server, { expire: 60, absoluteExpire: 3 })
      const client = (yield* serve(store))()
      const login = yield* client.post("/login/ada", { expire: 30 * 86_400 })
      expect(maxAgeOf(login)).toBeLessThanOrEqual(3)
      const id = idOf(client)
      expect(yield* promise(() => raw.hget(`session:${id}`, Session.expireField))).toBe(String(30 * 86_400_000))
      expect(yield* promise(() => raw.pttl(`session:${id}`))).toBeLessThanOrEqual(3000)
      // Active, and still cut off at the deadline.
      const written = yield* client.get("/count")
      expect(maxAgeOf(written)).toBeLessThanOrEqual(3)
      expect(yield* promise(() => raw.pttl(`session:${id}`))).toBeLessThanOrEqual(3000)
      yield* RedisServer.eventually(
        Effect.flatMap(
          promise(() => raw.exists(`session:${id}`)),
          (n) => n === 0 ? Effect.void : Effect.fail("still there")
        ),
        { timeoutMs: 10_000, intervalMs: 50 }
      )
      expect((yield* client.get("/read")).body).toMatchObject({ isNew: true, user: null })
    }).pipe(guard(30_000, "absolute cap")))
})
