/**
 * Child process entry: serves the demo app (examples/app.ts) on Redis, on a
 * free loopback port, exactly as examples/demo.ts does, and tells the parent
 * its port over IPC. Environment: CHAOS_REDIS_URL, CHAOS_SECRET.
 *
 * It answers `{ type: "stats", id, gc }` over IPC with `{ type: "stats", id,
 * heapUsed, fibers, aborted }`: the heap (after two full GCs when `gc`; the
 * parent starts it with --expose-gc), the request fibers alive (counted by a
 * supervisor), and how many responses their clients closed before they were
 * ended.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Supervisor from "effect/Supervisor"
import { createServer } from "node:http"
import * as App from "../examples/app.js"

const redisUrl = process.env["CHAOS_REDIS_URL"] ?? ""
const secret = Redacted.make(process.env["CHAOS_SECRET"] ?? "")

const announce = Layer.effectDiscard(
  HttpServer.addressWith((address) =>
    Effect.sync(() => process.send?.({ port: address._tag === "TcpAddress" ? address.port : 0 }))
  )
)

// Responses whose connection closed before they were ended: their client gave up on them.
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

const Main = Layer.unwrapEffect(Effect.map(
  App.make({ secrets: [secret] }),
  (app) =>
    HttpServer.serve(app).pipe(
      Layer.merge(announce),
      Layer.provide(App.storeLayer(redisUrl)),
      Layer.provide(NodeHttpServer.layer(makeServer, { port: 0, host: "127.0.0.1" }))
    )
))

// The parent going away ends us, whatever state we are in.
process.on("disconnect", () => process.exit(0))

// Outages make the app log a warning per failed request: thousands of lines that say nothing the
// parent does not count itself.
const program = Effect.gen(function*() {
  const supervisor = yield* Supervisor.track
  process.on("message", (message: { readonly type?: string; readonly id?: number; readonly gc?: boolean }) => {
    if (message.type !== "stats") return
    const gc = (globalThis as { gc?: () => void }).gc
    if (message.gc === true) {
      gc?.()
      gc?.()
    }
    const heapUsed = process.memoryUsage().heapUsed
    void Effect.runPromise(supervisor.value).then((fibers) =>
      process.send?.({ type: "stats", id: message.id, heapUsed, fibers: fibers.length, aborted, gc: gc !== undefined })
    )
  })
  return yield* Effect.supervised(Layer.launch(Main), supervisor)
})

program.pipe(
  Logger.withMinimumLogLevel(LogLevel.Error),
  Effect.runPromise
).catch((error: unknown) => {
  process.stderr.write(`chaos app failed: ${String(error)}\n`)
  process.exit(1)
})
