/**
 * The demo app: a visit counter with login and logout, on the session
 * middleware. `examples/demo.ts` runs it; the tests serve the same app.
 *
 * Routes (the demo's contract):
 * - `GET /` → `{"visits": n, "user": name | null}`; each call counts a visit.
 * - `POST /login` with `{"name": "..."}` → a new session id, the user stored.
 * - `POST /logout` → the session destroyed, the cookie expired.
 * - `GET /health` → `{"store": "redis" | "memory", "redis": "up" | "down" | null}`.
 * - a store failure → 503 with `{"error": ...}`.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as HttpSession from "../src/HttpSession.js"
import type { SessionConfigError } from "../src/SessionConfig.js"
import type { RedisConnectionError } from "../src/SessionError.js"
import * as SessionStore from "../src/SessionStore.js"

/** The session's fields, typed: reads decode and writes encode. */
export const AppSession = HttpSession.typed(Schema.Struct({
  visits: Schema.Int,
  user: Schema.optional(Schema.String)
}))

const Login = Schema.Struct({
  name: Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(100))
})

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

const visits = Effect.map(AppSession.get("visits"), Option.getOrElse(() => 0))

/** The routes, before the session middleware. */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/",
    Effect.gen(function*() {
      const count = yield* AppSession.modify("visits", (n) => Option.getOrElse(n, () => 0) + 1)
      const user = yield* AppSession.get("user")
      return json({ visits: count, user: Option.getOrNull(user) })
    })
  ),
  HttpRouter.post(
    "/login",
    Effect.gen(function*() {
      const { name } = yield* HttpServerRequest.schemaBodyJson(Login)
      const session = yield* HttpSession.HttpSession
      // A new id at the moment of privilege change: whoever knew the old id learns nothing.
      yield* session.regenerate
      yield* AppSession.set("user", name)
      return json({ visits: yield* visits, user: name })
    }).pipe(
      Effect.catchTags({
        ParseError: () => Effect.succeed(json({ error: "expected a JSON body {\"name\": \"...\"}" }, 400)),
        RequestError: () => Effect.succeed(json({ error: "could not read the request body" }, 400))
      })
    )
  ),
  HttpRouter.post(
    "/logout",
    Effect.gen(function*() {
      const session = yield* HttpSession.HttpSession
      yield* session.destroy
      return json({ visits: 0, user: null })
    })
  ),
  HttpRouter.get(
    "/health",
    Effect.gen(function*() {
      const store = yield* SessionStore.SessionStore
      if (store.backend === "memory") return json({ store: "memory", redis: null })
      const up = yield* store.ping.pipe(Effect.as(true), Effect.orElseSucceed(() => false))
      return json({ store: "redis", redis: up ? "up" : "down" }, up ? 200 : 503)
    })
  )
)

const storeUnavailable = (error: { readonly message: string }) =>
  Effect.as(
    Effect.logWarning("session store unavailable", error.message),
    json({ error: "session store unavailable" }, 503)
  )

const sessionUnreadable = (error: { readonly message: string }) =>
  Effect.as(Effect.logError("session data unreadable", error.message), json({ error: "session data unreadable" }, 500))

/**
 * The app: the routes with the session middleware, and the errors mapped to
 * JSON responses. Store errors are caught after the middleware, so that those
 * of the end-of-request write are mapped too.
 */
export const make = (options: HttpSession.Input) =>
  Effect.map(HttpSession.middleware(options), (session) =>
    router.pipe(
      session,
      Effect.catchTags({
        RedisConnectionError: storeUnavailable,
        RedisCommandError: storeUnavailable,
        SessionDecodeError: sessionUnreadable,
        SessionEncodeError: sessionUnreadable,
        SessionSchemaError: sessionUnreadable,
        RouteNotFound: () => Effect.succeed(json({ error: "not found" }, 404))
      })
    ))

/** The store: Redis at `redisUrl` when given, else in memory. */
export const storeLayer = (
  redisUrl: string | undefined
): Layer.Layer<SessionStore.SessionStore, SessionConfigError | RedisConnectionError> =>
  redisUrl === undefined ? SessionStore.layerMemory() : SessionStore.layer({ url: redisUrl })
