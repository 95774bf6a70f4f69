/**
 * The parent side of the delaying proxy: forks it in its own process (so its
 * work does not share the load generator's event loop) in front of a Redis.
 */
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { BenchRedis } from "../redis.js"

const entry = fileURLToPath(new URL("./delayProxy.ts", import.meta.url))

/** A Redis reached through the proxy: same server, `delayMs` added each way to every chunk. */
export interface DelayedRedis extends BenchRedis {
  readonly delayMs: number
}

export const startDelayProxy = (redis: BenchRedis, delayMs: number): Promise<DelayedRedis> =>
  new Promise((resolve, reject) => {
    const child = fork(entry, [String(redis.port), String(delayMs)], {
      execArgv: process.execArgv,
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    const kill = () => child.kill("SIGKILL")
    process.once("exit", kill)
    const guard = setTimeout(() => {
      kill()
      reject(new Error("the delaying proxy did not start within 30 s"))
    }, 30_000)
    child.once("exit", (code) => {
      clearTimeout(guard)
      reject(new Error(`the delaying proxy exited with ${code}`))
    })
    child.once("message", (message) => {
      clearTimeout(guard)
      const port = (message as { port: number }).port
      const stop = () =>
        new Promise<void>((done) => {
          process.removeListener("exit", kill)
          if (child.exitCode !== null || child.signalCode !== null) return done()
          child.removeAllListeners("exit")
          child.once("exit", () => done())
          child.disconnect()
        })
      resolve({
        host: "127.0.0.1",
        port,
        server: `127.0.0.1:${port}`,
        url: `redis://127.0.0.1:${port}`,
        delayMs,
        stop
      })
    })
  })
