/**
 * Child process entry: one app instance for the tests that need several of
 * them, each in its own process, on one Redis, over real HTTP. Started by
 * AppProcess.ts; tells the parent its port over IPC.
 *
 * Environment: APP_REDIS (a `redis://` url), APP_SECRET, APP_ROLLING ("1"),
 * APP_COMMAND_TIMEOUT (ms), APP_CACHE_CAPACITY.
 *
 * Routes:
 * - `POST /login?user=u` → login; `POST /regenerate`; `POST /logout-everywhere` → `{ revoked }`;
 *   `GET /whoami` → `{ user }`; `POST /write` → sets a field; `GET /ping` → never touches the session.
 * - `POST /hold/login?user=u&gate=g`, `POST /hold/regenerate?gate=g`: load the session, then wait at
 *   gate `g` until `POST /release?gate=g`, then log in or regenerate. `GET /reached?gate=g` answers
 *   once a request waits there.
 * - `GET /stats`: `{ heapUsed, fibers, aborted }`: the heap after two full GCs (`?gc=0`: without),
 *   the request fibers still alive (every fiber the HTTP server forked, counted by a supervisor, but
 *   this one's), and how many responses were closed by their client before they were ended.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Supervisor from "effect/Supervisor"
import { createServer } from "node:http"
import * as HttpSession from "../../src/HttpSession.js"
import * as SessionStore from "../../src/SessionStore.js"

const env = (name: string) => process.env[name]

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })
const session = HttpSession.HttpSession
const param = (name: string) =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) => new URL(request.url, "http://x").searchParams.get(name)!)

interface Gate {
  readonly reached: Deferred.Deferred<void>
  readonly release: Deferred.Deferred<void>
}
const gates = new Map<string, Gate>()
const gate = (name: string): Gate => {
  let found = gates.get(name)
  if (found === undefined) {
    found = { reached: Deferred.unsafeMake(FiberId.none), release: Deferred.unsafeMake(FiberId.none) }
    gates.set(name, found)
  }
  return found
}

const held = (then: (s: HttpSession.HttpSession) => Effect.Effect<void, unknown>) =>
  Effect.gen(function*() {
    const s = yield* session
    const g = gate(yield* param("gate"))
    // Loaded (through this instance's near-cache or Redis) before the wait.
    const before = yield* s.user
    yield* Deferred.succeed(g.reached, undefined)
    yield* Deferred.await(g.release)
    yield* then(s)
    return json({ before: Option.getOrNull(before) })
  })

// Responses whose connection closed before they were ended: the client gave up on them.
let aborted = 0
const makeServer = () => {
  const server = createServer()
  server.on("request", (_request, response) => {
    response.on("close", () => {
      if (!response.writableEnded) aborted++
    })
  })
  return server
}

const routes = (
  stats: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
) =>
  HttpRouter.empty.pipe(
    HttpRouter.get("/stats", stats),
    HttpRouter.post(
      "/login",
      Effect.gen(function*() {
        const user = yield* param("user")
        yield* (yield* session).login(user)
        return json({ user })
      })
    ),
    HttpRouter.post("/regenerate", Effect.as(Effect.flatMap(session, (s) => s.regenerate), json({ ok: true }))),
    HttpRouter.post("/hold/login", Effect.flatMap(param("user"), (user) => held((s) => s.login(user)))),
    HttpRouter.post("/hold/regenerate", held((s) => s.regenerate)),
    HttpRouter.get(
      "/reached",
      Effect.flatMap(param("gate"), (name) => Effect.as(Deferred.await(gate(name).reached), json({})))
    ),
    HttpRouter.post(
      "/release",
      Effect.flatMap(param("gate"), (name) => Effect.as(Deferred.succeed(gate(name).release, undefined), json({})))
    ),
    HttpRouter.post(
      "/logout-everywhere",
      Effect.map(Effect.flatMap(session, (s) => s.signOutEverywhere), (revoked) => json({ revoked }))
    ),
    HttpRouter.get(
      "/whoami",
      Effect.map(Effect.flatMap(session, (s) => s.user), (user) => json({ user: Option.getOrNull(user) }))
    ),
    HttpRouter.post(
      "/write",
      Effect.as(Effect.flatMap(session, (s) => s.set("x", "y".repeat(200))), json({ ok: true }))
    ),
    HttpRouter.get("/ping", Effect.succeed(HttpServerResponse.text("pong")))
  )

const main = Effect.gen(function*() {
  const supervisor = yield* Supervisor.track
  const stats = Effect.gen(function*() {
    const gc = (globalThis as { gc?: () => void }).gc
    if ((yield* param("gc")) !== "0") {
      gc?.()
      gc?.()
    }
    // This request's own fiber is one of them.
    const fibers = (yield* supervisor.value).length - 1
    return json({ heapUsed: process.memoryUsage().heapUsed, gc: gc !== undefined, fibers, aborted })
  })
  const middleware = yield* HttpSession.middleware({
    secrets: [env("APP_SECRET") ?? ""],
    rolling: env("APP_ROLLING") === "1"
  })
  const app = routes(stats).pipe(
    middleware,
    Effect.catchAll((error) => Effect.succeed(json({ error: String(error) }, 503)))
  )
  const store = SessionStore.layer({
    url: env("APP_REDIS") ?? "",
    commandTimeout: Number(env("APP_COMMAND_TIMEOUT") ?? 2000),
    cache: { capacity: Number(env("APP_CACHE_CAPACITY") ?? 10_000) }
  })
  const announce = Layer.effectDiscard(
    HttpServer.addressWith((address) =>
      Effect.sync(() => process.send?.({ port: address._tag === "TcpAddress" ? address.port : 0 }))
    )
  )
  return yield* HttpServer.serve(app).pipe(
    Layer.merge(announce),
    Layer.provide(store),
    Layer.provide(NodeHttpServer.layer(makeServer, { port: 0, host: "127.0.0.1" })),
    Layer.launch,
    Effect.supervised(supervisor)
  )
})

process.on("disconnect", () => process.exit(0))

Effect.runPromise(main.pipe(Logger.withMinimumLogLevel(LogLevel.Error))).catch((error: unknown) => {
  process.stderr.write(`test app failed: ${String(error)}\n`)
  process.exit(1)
})
