/**
 * Starts a private redis-server for the benchmark: loopback, a free port,
 * no persistence, a temp dir. Never port 6379, never a system service.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface BenchRedis {
  readonly host: string
  readonly port: number
  /** `"127.0.0.1:port"`, the form `SessionConfig` takes. */
  readonly server: string
  readonly url: string
  readonly stop: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      probe.close(() => (port === 6379 || port === 0 ? freePort().then(resolve, reject) : resolve(port)))
    })
  })

const live = new Set<ChildProcess>()

// A child must never outlive the bench, whatever way it ends.
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL")
})

const launch = (port: number, dir: string): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn("redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--loglevel",
      "warning"
    ], { stdio: ["ignore", "pipe", "pipe"] })
    live.add(child)
    let output = ""
    // Loose hang guard: redis-server is normally ready in ~50 ms.
    const guard = setTimeout(() => fail(new Error(`redis-server did not start within 10 s:\n${output}`)), 10_000)
    const fail = (error: Error) => {
      clearTimeout(guard)
      child.kill("SIGKILL")
      live.delete(child)
      reject(error)
    }
    const probe = () => {
      const socket = net.connect(port, "127.0.0.1")
      socket.once("connect", () => socket.write("PING\r\n"))
      socket.once("data", (data) => {
        socket.destroy()
        if (data.toString().startsWith("+PONG")) {
          clearTimeout(guard)
          resolve(child)
        } else setImmediate(probe)
      })
      socket.once("error", () => {
        socket.destroy()
        if (child.exitCode === null) setTimeout(probe, 5)
      })
    }
    child.stdout?.on("data", (d) => (output += d))
    child.stderr?.on("data", (d) => (output += d))
    child.once("exit", (code) => fail(new Error(`redis-server exited with ${code}:\n${output}`)))
    probe()
  })

/** Starts redis-server on a free loopback port; retries if the port was taken meanwhile. */
export const startRedis = async (): Promise<BenchRedis> => {
  const dir = mkdtempSync(join(tmpdir(), "bench-redis-"))
  let lastError: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    let child: ChildProcess
    try {
      child = await launch(port, dir)
    } catch (error) {
      lastError = error
      continue
    }
    child.removeAllListeners("exit")
    const stop = () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once("exit", () => {
          live.delete(child)
          rmSync(dir, { recursive: true, force: true })
          resolve()
        })
        child.kill("SIGTERM")
      })
    return { host: "127.0.0.1", port, server: `127.0.0.1:${port}`, url: `redis://127.0.0.1:${port}`, stop }
  }
  rmSync(dir, { recursive: true, force: true })
  throw lastError
}
