/**
 * Child process entry: serves the demo app (examples/app.ts) on Redis, on a
 * free loopback port, exactly as examples/demo.ts does, and tells the parent
 * its port over IPC. Environment: CHAOS_REDIS_URL, CHAOS_SECRET.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import * as App from "../examples/app.js"

const redisUrl = process.env["CHAOS_REDIS_URL"] ?? ""
const secret = Redacted.make(process.env["CHAOS_SECRET"] ?? "")

const announce = Layer.effectDiscard(
  HttpServer.addressWith((address) =>
    Effect.sync(() => process.send?.({ port: address._tag === "TcpAddress" ? address.port : 0 }))
  )
)

const Main = Layer.unwrapEffect(Effect.map(
  App.make({ secrets: [secret] }),
  (app) =>
    HttpServer.serve(app).pipe(
      Layer.merge(announce),
      Layer.provide(App.storeLayer(redisUrl)),
      Layer.provide(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    )
))

// The parent going away ends us, whatever state we are in.
process.on("disconnect", () => process.exit(0))

// Outages make the app log a warning per failed request: thousands of lines that say nothing the
// parent does not count itself.
Layer.launch(Main).pipe(
  Logger.withMinimumLogLevel(LogLevel.Error),
  Effect.runPromise
).catch((error: unknown) => {
  process.stderr.write(`chaos app failed: ${String(error)}\n`)
  process.exit(1)
})
