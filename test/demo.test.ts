/**
 * The demo app's contract (examples/app.ts), served on a real Node server
 * against both stores, a Redis that dies and comes back, and `npm run demo`
 * itself as a child process.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ChildProcess, spawn } from "node:child_process"
import * as App from "../examples/app.js"
import * as SessionStore from "../src/SessionStore.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

const secret = "demo-test-secret-0123456789abcdefghijkl"
const guard = RedisServer.hangGuard

interface DemoShape {
  readonly backend: "memory" | "redis"
  readonly redis: RedisServer.RedisServer | undefined
  readonly store: Layer.Layer<SessionStore.SessionStore>
}

class Demo extends Context.Tag("test/Demo")<Demo, DemoShape>() {}

/** Serves the demo app with the harness's store; the store lives as long as the test. */
const serveDemo = Effect.gen(function*() {
  const demo = yield* Demo
  const app = yield* App.make({ secrets: [secret] })
  const context = yield* Layer.build(demo.store)
  const url = yield* Http.serve(app).pipe(Effect.provide(context))
  return { url, client: () => Http.makeClient(url) }
})

const idOf = (signed: string | undefined) => signed!.slice(0, signed!.lastIndexOf("."))

const contract = (name: string, harness: Layer.Layer<Demo>) =>
  layer(harness, { excludeTestServices: true })(name, (it) => {
    it.scoped("GET / counts this session's visits: 1, 2, 3; a new client starts at 1", () =>
      Effect.gen(function*() {
        const demo = yield* serveDemo
        const client = demo.client()
        for (const visits of [1, 2, 3]) {
          const reply = yield* client.get("/")
          expect(reply.status).toBe(200)
          expect(reply.headers.get("content-type")).toContain("application/json")
          expect(reply.body).toEqual({ visits, user: null })
        }
        expect((yield* demo.client().get("/")).body).toEqual({ visits: 1, user: null })
      }))

    it.scoped("POST /login regenerates the id and stores the user; the old cookie finds nothing", () =>
      Effect.gen(function*() {
        const { redis } = yield* Demo
        const demo = yield* serveDemo
        const client = demo.client()
        yield* client.get("/")
        const before = client.jar.get("sid")!
        const login = yield* client.post("/login", { name: "  ann " })
        expect(login.status).toBe(200)
        expect(login.body).toEqual({ visits: 1, user: "ann" })
        const after = client.jar.get("sid")!
        expect(idOf(after)).not.toBe(idOf(before))
        if (redis !== undefined) {
          const raw = redis.client()
          expect(yield* Effect.promise(() => raw.exists(`session:${idOf(before)}`))).toBe(0)
          expect(yield* Effect.promise(() => raw.hget(`session:${idOf(after)}`, "user"))).toBe("\"ann\"")
        }
        expect((yield* client.get("/")).body).toEqual({ visits: 2, user: "ann" })
        const replay = yield* demo.client().request("/", { cookie: `sid=${before}` })
        expect(replay.body).toEqual({ visits: 1, user: null })
      }))

    it.scoped("POST /login with remember: the session and its cookie live 30 days; without it, the store's lifetime", () =>
      Effect.gen(function*() {
        const { redis } = yield* Demo
        const demo = yield* serveDemo
        const [remembered, plain] = [demo.client(), demo.client()]
        const login = yield* remembered.post("/login", { name: "ann", remember: true })
        expect(login.body).toEqual({ visits: 0, user: "ann" })
        expect(login.setCookies.map((c) => c.attributes["max-age"])).toEqual([String(30 * 86_400)])
        const other = yield* plain.post("/login", { name: "ann", remember: false })
        expect(other.setCookies.map((c) => c.attributes["max-age"])).toEqual(["900"])
        if (redis !== undefined) {
          const raw = redis.client()
          expect(yield* Effect.promise(() => raw.pttl(`session:${idOf(remembered.jar.get("sid"))}`))).toBeGreaterThan(
            29 * 86_400_000
          )
          expect(yield* Effect.promise(() => raw.pttl(`session:${idOf(plain.jar.get("sid"))}`))).toBeLessThanOrEqual(
            900_000
          )
        }
        // The sessions list shows each one's own end.
        const { sessions } = (yield* remembered.get("/sessions")).body as {
          sessions: Array<{ current: boolean; expiresAt: string }>
        }
        const ends = Object.fromEntries(sessions.map((s) => [String(s.current), Date.parse(s.expiresAt)]))
        expect(ends["true"]).toBeGreaterThan(Date.now() + 29 * 86_400_000)
        expect(ends["false"]).toBeLessThanOrEqual(Date.now() + 900_000)
        // Logging in again without it goes back to the store's lifetime.
        const again = yield* remembered.post("/login", { name: "ann" })
        expect(again.setCookies.map((c) => c.attributes["max-age"])).toEqual(["900"])
      }))

    it.scoped("POST /login rejects a body without a name with 400 JSON", () =>
      Effect.gen(function*() {
        const demo = yield* serveDemo
        for (
          const body of [
            {},
            { name: "" },
            { name: "   " },
            { name: 42 },
            { name: "x", remember: "yes" },
            "not an object"
          ]
        ) {
          const reply = yield* demo.client().post("/login", body)
          expect(reply.status, JSON.stringify(body)).toBe(400)
          expect(reply.body).toHaveProperty("error")
          expect(reply.setCookies).toEqual([])
        }
        const notJson = yield* demo.client().request("/login", {
          method: "POST",
          headers: { "content-type": "application/json" }
        })
        expect(notJson.status).toBe(400)
      }))

    it.scoped("POST /logout destroys the session and expires the cookie", () =>
      Effect.gen(function*() {
        const { redis } = yield* Demo
        const demo = yield* serveDemo
        const client = demo.client()
        yield* client.post("/login", { name: "bob" })
        const id = idOf(client.jar.get("sid"))
        const logout = yield* client.post("/logout")
        expect(logout.status).toBe(200)
        expect(logout.body).toEqual({ visits: 0, user: null })
        expect(logout.setCookies).toHaveLength(1)
        expect(Http.isExpired(logout.setCookies[0]!)).toBe(true)
        expect(client.jar.has("sid")).toBe(false)
        if (redis !== undefined) {
          expect(yield* Effect.promise(() => redis.client().exists(`session:${id}`))).toBe(0)
        }
        expect((yield* client.get("/")).body).toEqual({ visits: 1, user: null })
      }))

    it.scoped("GET /sessions: 401 JSON when anonymous (and no session made); the user's sessions without their ids", () =>
      Effect.gen(function*() {
        const demo = yield* serveDemo
        const anonymous = demo.client()
        const denied = yield* anonymous.get("/sessions")
        expect(denied.status).toBe(401)
        expect(denied.body).toEqual({ error: "not logged in" })
        expect(denied.setCookies).toEqual([])
        const [phone, laptop] = [demo.client(), demo.client()]
        yield* phone.post("/login", { name: "cy" })
        yield* laptop.post("/login", { name: "cy" })
        const listed = yield* phone.get("/sessions")
        expect(listed.status).toBe(200)
        const sessions = (listed.body as { sessions: Array<Record<string, unknown>> }).sessions
        expect(sessions.map((s) => s["current"]).sort()).toEqual([false, true])
        for (const s of sessions) {
          expect(Object.keys(s).sort()).toEqual(["createdAt", "current", "expiresAt", "handle", "lastActiveAt"])
          expect(Date.parse(String(s["expiresAt"]))).toBeGreaterThan(Date.now())
        }
        const text = JSON.stringify(listed.body)
        for (const client of [phone, laptop]) expect(text).not.toContain(idOf(client.jar.get("sid")))
      }))

    it.scoped("POST /sessions/revoke ends the session its handle names, among the user's own only", () =>
      Effect.gen(function*() {
        const demo = yield* serveDemo
        const [phone, laptop, stranger] = [demo.client(), demo.client(), demo.client()]
        for (const [client, name] of [[phone, "di"], [laptop, "di"], [stranger, "eve"]] as const) {
          yield* client.post("/login", { name })
        }
        const sessions = ((yield* phone.get("/sessions")).body as {
          sessions: Array<{ current: boolean; handle: string }>
        }).sessions
        const other = sessions.find((s) => !s.current)!
        expect((yield* stranger.post("/sessions/revoke", { handle: other.handle })).status).toBe(404)
        expect(((yield* laptop.get("/")).body as { user: unknown }).user).toBe("di")
        const revoked = yield* phone.post("/sessions/revoke", { handle: other.handle })
        expect(revoked.body).toEqual({ revoked: 1 })
        expect(((yield* laptop.get("/")).body as { user: unknown }).user).toBeNull()
        expect(((yield* phone.get("/")).body as { user: unknown }).user).toBe("di")
        expect((yield* phone.post("/sessions/revoke", { handle: "nope" })).status).toBe(404)
      }))

    it.scoped("POST /logout-everywhere revokes every session of the user, this one too, and expires the cookie", () =>
      Effect.gen(function*() {
        const demo = yield* serveDemo
        const [a, b, other] = [demo.client(), demo.client(), demo.client()]
        yield* a.post("/login", { name: "fay" })
        yield* b.post("/login", { name: "fay" })
        yield* other.post("/login", { name: "gus" })
        const reply = yield* a.post("/logout-everywhere")
        expect(reply.status).toBe(200)
        expect(reply.body).toEqual({ revoked: 2 })
        expect(reply.setCookies.some((c) => c.name === "sid" && Http.isExpired(c))).toBe(true)
        expect((yield* a.get("/")).body).toEqual({ visits: 1, user: null })
        expect(((yield* b.get("/")).body as { user: unknown }).user).toBeNull()
        expect(((yield* other.get("/")).body as { user: unknown }).user).toBe("gus")
        expect((yield* demo.client().post("/logout-everywhere")).status).toBe(401)
      }))

    it.scoped("GET / with Accept: text/html is a page with the count, forms, and the user's sessions", () =>
      Effect.gen(function*() {
        const demo = yield* serveDemo
        const client = demo.client()
        yield* client.post("/login", { name: "<hal>" })
        const page = yield* client.request("/", { headers: { accept: "text/html,application/xhtml+xml" } })
        expect(page.status).toBe(200)
        expect(page.headers.get("content-type")).toContain("text/html")
        const html = String(page.body)
        expect(html).toContain("<strong id=\"visits\">1</strong>")
        expect(html).toContain("&#60;hal&#62;")
        expect(html).not.toContain("<hal>")
        expect(html).toContain("action=\"/sessions/revoke\"")
        expect(html).toContain("Sign out everywhere else")
        expect(html).not.toContain(idOf(client.jar.get("sid")))
        // Anything else still gets JSON.
        expect((yield* client.request("/", { headers: { accept: "*/*" } })).body).toEqual({ visits: 2, user: "<hal>" })
      }))

    it.scoped("the page says where this request's session came from, with the near-cache's counters and readable times", () =>
      Effect.gen(function*() {
        const { backend, store } = yield* Demo
        const demo = yield* serveDemo
        const client = demo.client()
        const html = { headers: { accept: "text/html" } }
        const sourceOf = (page: unknown) => /<p id="source" data-source="([^"]+)"/.exec(String(page))?.[1]
        const stat = (page: unknown, name: string) =>
          Number(new RegExp(`data-stat="${name}">(\\d+)<`).exec(String(page))?.[1])
        // No cookie: a new session, from nowhere.
        expect(sourceOf((yield* client.request("/", html)).body)).toBe("new")
        yield* client.post("/login", { name: "ada" })
        const page = String((yield* client.request("/", html)).body)
        if (backend === "memory") {
          expect(sourceOf(page)).toBe("memory")
          expect(page).not.toContain("id=\"cache\"")
        } else {
          // The login wrote the session through this instance's near-cache: the read is a hit.
          expect(sourceOf(page)).toBe("near-cache")
          expect(page).toMatch(/data-stat="mode">Tracking</)
          const hits = stat(page, "hits")
          expect(hits).toBeGreaterThan(0)
          // A second instance on the same Redis has never seen it: a miss, then a hit.
          const other = yield* App.make({ secrets: [secret] })
          const otherUrl = yield* Http.serve(other).pipe(Effect.provide(yield* Layer.build(store)))
          const second = Http.makeClient(otherUrl)
          second.jar.set("sid", client.jar.get("sid")!)
          expect(sourceOf((yield* second.request("/", html)).body)).toBe("redis")
          const again = String((yield* second.request("/", html)).body)
          expect(sourceOf(again)).toBe("near-cache")
          expect(stat(again, "misses")).toBeGreaterThanOrEqual(1)
        }
        // Times are the demo's local time and how long ago, never raw ISO text (the ISO form is in datetime).
        expect(page).toMatch(/<time datetime="\d{4}-\d\d-\d\dT[^"]+">[^<]+ \((now|\d+ s ago)\)<\/time>/)
        expect(page).not.toMatch(/>\s*\d{4}-\d\d-\d\dT/)
      }))

    it.scoped("GET /health names the store", () =>
      Effect.gen(function*() {
        const { backend } = yield* Demo
        const demo = yield* serveDemo
        const reply = yield* demo.client().get("/health")
        expect(reply.status).toBe(200)
        expect(reply.body).toEqual(
          backend === "redis" ? { store: "redis", redis: "up" } : { store: "memory", redis: null }
        )
        expect(reply.setCookies).toEqual([])
      }))

    it.scoped("an unknown route answers 404 JSON without touching the session", () =>
      Effect.gen(function*() {
        const { redis } = yield* Demo
        const demo = yield* serveDemo
        const client = demo.client()
        yield* client.get("/")
        const request = client.get("/no/such/page")
        const reply = redis === undefined ? yield* request : (yield* redis.countCommands(request)).value
        if (redis !== undefined) expect((yield* redis.countCommands(client.get("/nope"))).total).toBe(0)
        expect(reply.status).toBe(404)
        expect(reply.body).toEqual({ error: "not found" })
        expect(reply.setCookies).toEqual([])
      }))
  })

contract(
  "demo app (memory store)",
  Layer.succeed(Demo, { backend: "memory", redis: undefined, store: SessionStore.layerMemory() })
)

const redisDemo = Layer.scoped(
  Demo,
  Effect.map(RedisServer.scoped(), (redis): DemoShape => ({
    backend: "redis",
    redis,
    store: Layer.orDie(App.storeLayer(redis.url))
  }))
)

contract("demo app (Redis store)", redisDemo)

describe("demo app when Redis dies", () => {
  layer(redisDemo, { excludeTestServices: true })((it) => {
    it.scoped("SIGKILL: 503 with a JSON error, without hanging; after a restart on the same port, requests succeed again", () =>
      Effect.gen(function*() {
        const { redis } = yield* Demo
        const demo = yield* serveDemo
        const client = demo.client()
        expect((yield* client.get("/")).body).toEqual({ visits: 1, user: null })
        yield* Effect.promise(() => redis!.kill())

        const down = yield* client.get("/").pipe(guard(30_000, "GET / with Redis killed"))
        expect(down.status).toBe(503)
        expect(down.body).toEqual({ error: "session store unavailable" })
        expect(down.setCookies).toEqual([])
        // A browser gets a page that says so, not JSON.
        const page = yield* client.request("/", { headers: { accept: "text/html,application/xhtml+xml" } }).pipe(
          guard(30_000, "GET / as a browser with Redis killed")
        )
        expect(page.status).toBe(503)
        expect(page.headers.get("content-type")).toContain("text/html")
        expect(String(page.body)).toContain("<h1 id=\"error\">Sessions are unavailable</h1>")
        const login = yield* demo.client().post("/login", { name: "ann" }).pipe(
          guard(30_000, "POST /login with Redis killed")
        )
        expect(login.status).toBe(503)
        const health = yield* client.get("/health").pipe(guard(30_000, "GET /health with Redis killed"))
        expect(health.status).toBe(503)
        expect(health.body).toEqual({ store: "redis", redis: "down" })

        yield* Effect.promise(() => redis!.restart())
        // The restarted server is empty (no persistence): the old cookie finds nothing, so a fresh session.
        const back = yield* RedisServer.eventually(
          Effect.filterOrFail(client.get("/"), (r) => r.status === 200, (r) => `still ${r.status}`),
          { timeoutMs: 30_000, intervalMs: 50 }
        )
        expect(back.body).toEqual({ visits: 1, user: null })
        expect((yield* client.get("/")).body).toEqual({ visits: 2, user: null })
        expect((yield* client.get("/health")).body).toEqual({ store: "redis", redis: "up" })
      }))
  })
})

// ---------------------------------------------------------------------------
// `npm run demo` as a process
// ---------------------------------------------------------------------------

/** The environment of a demo process: ours, minus the demo's own variables, plus `overrides`. */
const demoEnv = (overrides: Record<string, string>): NodeJS.ProcessEnv => {
  const { HOST: _h, PORT: _p, REDIS_URL: _r, SESSION_SECRET: _s, ...env } = process.env
  return { ...env, PORT: "0", ...overrides }
}

interface Running {
  readonly url: string
  readonly stderr: () => string
}

/**
 * Runs examples/demo.ts the way `npm run demo` does, until the scope closes.
 * It gets its own process group, so that closing stops tsx and the node
 * process it starts.
 */
const runDemo = (overrides: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn("node_modules/.bin/tsx", ["examples/demo.ts"], {
        env: demoEnv(overrides),
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
    ),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        process.kill(-child.pid!, "SIGTERM")
      })
  ).pipe(Effect.flatMap(waitForUrl), guard(60_000, "the demo to print its URL"))

const waitForUrl = (child: ChildProcess) =>
  Effect.async<Running>((resume) => {
    let stdout = ""
    let stderr = ""
    child.stderr!.on("data", (chunk) => (stderr += String(chunk)))
    child.stdout!.on("data", (chunk) => {
      stdout += String(chunk)
      const match = /listening on (http:\/\/\S+)/.exec(stdout)
      if (match !== null) resume(Effect.succeed({ url: match[1]!, stderr: () => stderr }))
    })
    child.once("close", (code) => resume(Effect.dieMessage(`the demo exited with ${code}: ${stdout}${stderr}`)))
  })

/** Runs the demo to its exit and returns its exit code and output. */
const runDemoToExit = (overrides: Record<string, string>) =>
  Effect.async<{ readonly code: number | null; readonly output: string }>((resume) => {
    const child = spawn("node_modules/.bin/tsx", ["examples/demo.ts"], {
      env: demoEnv(overrides),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (chunk) => (output += String(chunk)))
    child.stderr.on("data", (chunk) => (output += String(chunk)))
    child.once("close", (code) => resume(Effect.succeed({ code, output })))
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(guard(60_000, "the demo to exit"))

describe("npm run demo (examples/demo.ts as a process)", () => {
  it.scopedLive("starts without Redis, prints its URL, warns about the missing secret, and serves the contract", () =>
    Effect.gen(function*() {
      const running = yield* runDemo({})
      expect(running.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(running.stderr()).toContain("SESSION_SECRET is not set")
      const client = Http.makeClient(running.url)
      expect((yield* client.get("/")).body).toEqual({ visits: 1, user: null })
      expect((yield* client.get("/")).body).toEqual({ visits: 2, user: null })
      expect((yield* client.post("/login", { name: "ann" })).body).toEqual({ visits: 2, user: "ann" })
      expect((yield* client.get("/health")).body).toEqual({ store: "memory", redis: null })
    }))

  it.scopedLive("uses Redis when REDIS_URL is set, and SESSION_SECRET when given", () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.scoped()
      const running = yield* runDemo({ REDIS_URL: redis.url, SESSION_SECRET: secret })
      expect(running.stderr()).not.toContain("SESSION_SECRET is not set")
      const client = Http.makeClient(running.url)
      expect((yield* client.get("/")).body).toEqual({ visits: 1, user: null })
      expect((yield* client.get("/health")).body).toEqual({ store: "redis", redis: "up" })
      const id = idOf(client.jar.get("sid"))
      expect(yield* Effect.promise(() => redis.client().hget(`session:${id}`, "visits"))).toBe("1")
    }))

  it.scopedLive("refuses to start with a short SESSION_SECRET, naming the option but not the secret", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runDemoToExit({ SESSION_SECRET: "tiny-secret" })
      expect(code).not.toBe(0)
      expect(output).toContain("secrets.0")
      expect(output).not.toContain("tiny-secret")
    }))
})
