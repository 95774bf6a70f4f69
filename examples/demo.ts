/**
 * `npm run demo`: serves the demo app (examples/app.ts).
 *
 * Environment:
 * - `PORT` (default 3000; 0 picks a free port), `HOST` (default 127.0.0.1);
 * - `REDIS_SESSION_SERVER`, `_SOCK`, `_URL`, `_SENTINELS` or `_CLUSTER` (with any other `REDIS_SESSION_*`
 *   setting): use Redis as they say (see docs/deployment.md);
 * - `REDIS_URL`: use Redis at this url; without it (or the above) sessions live in memory;
 * - `SESSION_SECRET`: the cookie signing secret, at least 32 characters.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpServer from "@effect/platform/HttpServer"
import { SessionStore } from "effect-session-redis"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import * as App from "./app.js"

/** Good enough for trying the demo on your machine, and for nothing else. */
const devSecret = Redacted.make("effect-session-redis-demo-secret-not-for-production")

const Env = Config.all({
  port: Config.integer("PORT").pipe(Config.withDefault(3000)),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  redisUrl: Config.option(Config.nonEmptyString("REDIS_URL")),
  // Any of these says where Redis is; then every REDIS_SESSION_* setting applies (SessionStore.layerConfig).
  redisSession: Config.map(
    Config.all(
      ["SERVER", "SOCK", "URL", "SENTINELS", "CLUSTER"].map((k) =>
        Config.option(Config.nonEmptyString(`REDIS_SESSION_${k}`))
      )
    ),
    (found) => Option.firstSomeOf(found)
  ),
  secret: Config.option(Config.redacted("SESSION_SECRET"))
})

const redactUrl = (url: string): string => {
  const parsed = new URL(url)
  if (parsed.password !== "") parsed.password = "***"
  return parsed.toString()
}

const Main = Layer.unwrapEffect(Effect.gen(function*() {
  const env = yield* Env
  if (Option.isNone(env.secret)) {
    yield* Console.error(
      "warning: SESSION_SECRET is not set, so the demo signs cookies with a built-in development secret. Set SESSION_SECRET (at least 32 characters) anywhere but your own machine."
    )
  }
  const app = yield* App.make({ secrets: [Option.getOrElse(env.secret, () => devSecret)] })
  const redisUrl = Option.getOrUndefined(env.redisUrl)

  const announce = Layer.effectDiscard(HttpServer.addressWith((address) =>
    Console.log(
      [
        address._tag === "TcpAddress"
          ? `demo listening on http://${env.host === "0.0.0.0" ? "localhost" : env.host}:${address.port}`
          : `demo listening on ${address.path}`,
        Option.isSome(env.redisSession)
          ? "sessions: Redis as the REDIS_SESSION_* variables say"
          : redisUrl === undefined
          ? "sessions: in memory (set REDIS_URL=redis://... to use Redis)"
          : `sessions: Redis at ${redactUrl(redisUrl)}`
      ].join("\n")
    )
  ))

  return HttpServer.serve(app).pipe(
    Layer.merge(announce),
    Layer.provide(
      Option.isSome(env.redisSession)
        ? SessionStore.layerConfig() as Layer.Layer<SessionStore.SessionStore, unknown>
        : App.storeLayer(redisUrl)
    ),
    Layer.provide(NodeHttpServer.layer(createServer, { port: env.port, host: env.host }))
  )
}))

Layer.launch(Main).pipe(NodeRuntime.runMain)
