/**
 * Helpers for test deployments made of several Redis processes (Sentinel,
 * Cluster, TLS): free ports, a launcher for processes that
 * `RedisServer.start` cannot describe (a sentinel needs its own config file),
 * and a PING poll. Every process launched here is SIGKILLed at process exit.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as net from "node:net"

const HOST = "127.0.0.1"
const launched = new Set<ChildProcess>()
let hooked = false

/** A port that was free a moment ago (never 6379). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.unref()
    probe.once("error", reject)
    probe.listen(0, HOST, () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      probe.close(() => (port > 0 && port !== 6379 ? resolve(port) : freePort().then(resolve, reject)))
    })
  })

/** A launched process: its pid and a SIGKILL that waits for the exit. */
export interface Proc {
  readonly pid: number | undefined
  readonly kill: () => Promise<void>
  readonly output: () => string
}

/** Spawns `command args`; the process is SIGKILLed at exit of this process at the latest. */
export const launch = (command: string, args: ReadonlyArray<string>): Proc => {
  if (!hooked) {
    hooked = true
    process.on("exit", () => {
      for (const child of launched) child.kill("SIGKILL")
    })
  }
  const child = spawn(command, [...args], { stdio: ["ignore", "pipe", "pipe"] })
  launched.add(child)
  let output = ""
  const collect = (chunk: Buffer) => (output = (output + chunk.toString("utf8")).slice(-4096))
  child.stdout?.on("data", collect)
  child.stderr?.on("data", collect)
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once("exit", () => resolve())
  })
  void exited.then(() => launched.delete(child))
  return {
    pid: child.pid,
    output: () => output,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      await exited
    }
  }
}

/** Runs a command to completion; rejects with its output when it fails. */
export const run = (command: string, args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile(
      command,
      [...args],
      { timeout: 30_000 },
      (error, stdout, stderr) =>
        error === null ? resolve(stdout) : reject(new Error(`${command} ${args.join(" ")}: ${stderr}${stdout}`))
    )
  )

/** Polls `check` every 20 ms until it resolves true, or rejects after `timeoutMs`. */
export const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    // A poll interval, not a wait for an outcome.
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
