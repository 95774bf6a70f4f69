/**
 * Child process entry: runs one HTTP server so the load generator gets the
 * other core. Argument: the mode; environment: BENCH_REDIS_SERVER ("host:port").
 * Tells the parent its port over IPC.
 */
import { startExpress } from "./expressServer.js"
import type { Mode } from "./modes.js"
import { startOurs } from "./oursServer.js"

const main = async () => {
  const mode = process.argv[2] as Mode
  const redisServer = process.env["BENCH_REDIS_SERVER"] ?? ""
  const ready = (port: number) => process.send?.({ port })
  // The parent going away ends us, whatever state we are in.
  process.on("disconnect", () => process.exit(0))
  // CPU time is what the parent divides by the request count: unlike throughput, it does not
  // depend on how much of the core other processes took meanwhile.
  process.on("message", (message) => {
    if (message === "cpu") process.send?.({ cpu: process.cpuUsage() })
  })
  switch (mode) {
    case "ours":
      await startOurs({ redisServer, kind: "sessions", ready })
      break
    case "oursNoSession":
      await startOurs({ redisServer, kind: "none", ready })
      break
    case "oursFloor":
      await startOurs({ redisServer, kind: "floor", ready })
      break
    case "oursWriteFloor":
      await startOurs({ redisServer, kind: "writeFloor", ready })
      break
    case "oursPlatformMiddleware":
      await startOurs({ redisServer, kind: "platformMiddleware", ready })
      break
    case "express":
    case "expressNoSession":
    case "expressCsc":
    case "expressOurs":
      await startExpress({
        redisUrl: `redis://${redisServer}`,
        redisServer,
        sessions: mode !== "expressNoSession",
        clientSideCache: mode === "expressCsc",
        ourStore: mode === "expressOurs",
        ready
      })
      break
    default:
      throw new Error(`unknown mode ${String(mode)}`)
  }
}

main().catch((error) => {
  process.stderr.write(`bench server failed: ${String(error)}\n`)
  process.exit(1)
})
