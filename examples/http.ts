import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
// Per module: the package's index also declares its cluster modules, whose types need more packages.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer, Option, Schema } from "effect"
import { HttpSession, SessionStore } from "effect-session-redis"
import { createServer } from "node:http"

// The session's fields, typed.
const AppSession = HttpSession.typed(Schema.Struct({
  visits: Schema.Int,
  user: Schema.optional(Schema.String)
}))

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/",
    Effect.gen(function*() {
      const visits = yield* AppSession.modify("visits", (n) => Option.getOrElse(n, () => 0) + 1)
      const user = yield* AppSession.get("user")
      return HttpServerResponse.unsafeJson({ visits, user: Option.getOrNull(user) })
    })
  )
)

const unavailable = () => Effect.succeed(HttpServerResponse.unsafeJson({ error: "try again later" }, { status: 503 }))

const HttpLive = Layer.unwrapEffect(Effect.gen(function*() {
  // Fails with a SessionConfigError naming the option when an option is bad.
  const session = yield* HttpSession.middleware({ secrets: [process.env.SESSION_SECRET ?? ""] })
  const app = router.pipe(
    session, // 1. the middleware goes on the app or router...
    Effect.catchTags({ RedisConnectionError: unavailable, RedisCommandError: unavailable }) // 2. ...errors are mapped after it
  )
  return HttpServer.serve(app)
}))

HttpLive.pipe(
  Layer.provide(SessionStore.layerConfig()), // Redis, from REDIS_SESSION_* (or SessionStore.layerMemory())
  Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 3000) })),
  Layer.launch,
  NodeRuntime.runMain
)
