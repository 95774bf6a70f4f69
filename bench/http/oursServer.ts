/**
 * Our HTTP server: @effect/platform-node with the HttpSession middleware, or
 * the same routes with no sessions at all, or with a middleware that does only
 * what any middleware must (the floor for HttpSession's machinery), or with
 * one of @effect/platform's own middlewares.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import { createServer } from "node:http"
import * as HttpSession from "../../src/HttpSession.js"
import { storeLayer } from "../ourStore.js"
import { makeSessionData } from "../sessionShape.js"

const ok = HttpServerResponse.text("ok")

const routes = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/login",
    Effect.gen(function*() {
      const session = yield* HttpSession.HttpSession
      for (const [key, value] of Object.entries(makeSessionData())) yield* session.set(key, value)
      return ok
    })
  ),
  HttpRouter.get(
    "/read",
    Effect.map(
      Effect.flatMap(HttpSession.HttpSession, (s) => s.get("userName")),
      (name) => HttpServerResponse.text(String(Option.getOrElse(name, () => "anonymous")))
    )
  ),
  HttpRouter.post(
    "/write",
    Effect.gen(function*() {
      const session = yield* HttpSession.HttpSession
      const counter = yield* session.get("counter")
      yield* session.set("counter", Number(Option.getOrElse(counter, () => 0)) + 1)
      return ok
    })
  ),
  HttpRouter.get(
    "/set/:field",
    Effect.gen(function*() {
      const { field } = yield* HttpRouter.params
      yield* Effect.flatMap(HttpSession.HttpSession, (s) => s.set(field ?? "missing", true))
      return ok
    })
  ),
  HttpRouter.get(
    "/dump",
    Effect.flatMap(Effect.flatMap(HttpSession.HttpSession, (s) => s.data), (d) => HttpServerResponse.json(d))
  )
)

// The same routes and response bodies, without sessions.
const withoutSessions = HttpRouter.empty.pipe(
  HttpRouter.get("/login", Effect.succeed(ok)),
  HttpRouter.get("/read", Effect.succeed(HttpServerResponse.text("user-0"))),
  HttpRouter.post("/write", Effect.succeed(ok))
)

/** What the floor middleware provides per request: a constant, built from the request as a session would be. */
class Floor extends Context.Tag("bench/Floor")<Floor, { readonly url: string; readonly name: string }>() {}

const identity: HttpApp.PreResponseHandler = (_request, response) => Effect.succeed(response)

/**
 * The least a session-like middleware must do per request, written as HttpSession's is: read the
 * request from the context, register a pre-response handler (identity) and provide a service.
 */
const floorMiddleware = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, Exclude<R, Floor>> =>
  Effect.contextWithEffect((context: Context.Context<HttpServerRequest.HttpServerRequest>) =>
    Effect.zipRight(
      HttpApp.appendPreResponseHandler(identity),
      Effect.provideService(app, Floor, {
        url: Context.get(context, HttpServerRequest.HttpServerRequest).url,
        name: "user-0"
      })
    )
  ) as HttpApp.Default<E, Exclude<R, Floor>>

const floorRoutes = HttpRouter.empty.pipe(
  HttpRouter.get("/login", Effect.succeed(ok)),
  HttpRouter.get("/read", Effect.map(Floor, (f) => HttpServerResponse.text(f.name))),
  HttpRouter.post("/write", Effect.as(Floor, ok))
)

/**
 * The floor for a store that writes through: the trivial middleware, and on a write the commands
 * our flush sends for a one-field change, by hand through ioredis to the same Redis (one key per
 * request in turn, as many as the load has sessions). No cookie, no read, no cache.
 */
const writeFloorRoutes = (redisServer: string) => {
  const [host, port] = redisServer.split(":")
  const client = new Redis({ host: host ?? "127.0.0.1", port: Number(port) })
  let n = 0
  const write = Effect.promise(() => {
    const key = `floor:${n++ % 64}`
    return client.multi().hset(key, "counter", String(n)).hincrby(key, "$v", 1).pexpire(key, 900_000).exec()
  })
  return HttpRouter.empty.pipe(
    HttpRouter.get("/login", Effect.succeed(ok)),
    HttpRouter.get("/read", Effect.map(Floor, (f) => HttpServerResponse.text(f.name))),
    HttpRouter.post("/write", Effect.zipRight(Floor, Effect.as(write, ok)))
  )
}

export type OursKind = "sessions" | "none" | "floor" | "writeFloor" | "platformMiddleware"

const listen = (ready: (port: number) => void) =>
  Effect.flatMap(
    HttpServer.addressWith((address) => Effect.succeed(address._tag === "TcpAddress" ? address.port : 0)),
    (port) => Effect.zipRight(Effect.sync(() => ready(port)), Effect.never)
  )

/** Serves on a free loopback port; calls `ready` with the port. */
export const startOurs = (
  options: { readonly redisServer: string; readonly kind: OursKind; readonly ready: (port: number) => void }
) => {
  const ServerLive = NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" })
  const serve = <E>(app: HttpApp.Default<E>) =>
    Effect.gen(function*() {
      yield* HttpServer.serveEffect(app)
      return yield* listen(options.ready)
    }).pipe(Effect.scoped, Effect.provide(ServerLive))
  if (options.kind === "floor") return Effect.runPromise(serve(floorMiddleware(floorRoutes)))
  if (options.kind === "writeFloor") {
    return Effect.runPromise(serve(floorMiddleware(writeFloorRoutes(options.redisServer))))
  }
  if (options.kind === "platformMiddleware") {
    return Effect.runPromise(serve(HttpMiddleware.xForwardedHeaders(withoutSessions)))
  }
  const program = options.kind === "sessions"
    ? Effect.gen(function*() {
      const session = yield* HttpSession.middleware({ secrets: ["bench-secret-not-for-production-0123456789"] })
      const app = routes.pipe(
        session,
        Effect.catchAll(() => Effect.succeed(HttpServerResponse.text("store unavailable", { status: 503 })))
      )
      yield* HttpServer.serveEffect(app)
      return yield* listen(options.ready)
    }).pipe(Effect.scoped, Effect.provide(ServerLive), Effect.provide(storeLayer(options.redisServer)))
    : Effect.gen(function*() {
      yield* HttpServer.serveEffect(withoutSessions)
      return yield* listen(options.ready)
    }).pipe(Effect.scoped, Effect.provide(ServerLive))
  return Effect.runPromise(program)
}
