/**
 * The load-generator side: forks a server child, logs in to get session
 * cookies, sends single requests, and drives autocannon.
 */
import autocannon, { type Request, type Result } from "autocannon"
import { type ChildProcess, fork } from "node:child_process"
import * as http from "node:http"
import { fileURLToPath } from "node:url"
import type { BenchRedis } from "../redis.js"
import type { Mode } from "./modes.js"

export interface RunningServer {
  readonly mode: Mode
  readonly port: number
  /** The child's process id (it names the child's CPU profile). */
  readonly pid: number
  /** The child's CPU time so far (user + system), in µs. */
  readonly cpuUs: () => Promise<number>
  readonly stop: () => Promise<void>
}

const serverEntry = fileURLToPath(new URL("./server.ts", import.meta.url))
const children = new Set<ChildProcess>()

process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL")
})

/**
 * Forks the server for `mode`. With BENCH_CPU_PROF=<dir> the child writes a
 * V8 CPU profile there when it stops.
 */
export const startServer = (mode: Mode, redis: BenchRedis): Promise<RunningServer> =>
  new Promise((resolve, reject) => {
    const profileDir = process.env["BENCH_CPU_PROF"]
    const child = fork(serverEntry, [mode], {
      env: { ...process.env, BENCH_REDIS_SERVER: redis.server },
      execArgv: [...process.execArgv, ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [])],
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    children.add(child)
    const guard = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${mode} server did not start within 30 s`))
    }, 30_000)
    child.once("exit", (code) => {
      clearTimeout(guard)
      children.delete(child)
      reject(new Error(`${mode} server exited with ${code}`))
    })
    child.once("message", (message) => {
      clearTimeout(guard)
      const port = (message as { port: number }).port
      const stop = () =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done()
          // Disconnecting lets the child exit normally, so a CPU profile gets written.
          const hard = setTimeout(() => child.kill("SIGKILL"), 10_000)
          child.removeAllListeners("exit")
          child.once("exit", () => {
            clearTimeout(hard)
            children.delete(child)
            done()
          })
          child.disconnect()
        })
      const cpuUs = () =>
        new Promise<number>((answer) => {
          child.once("message", (reply) => {
            const { system, user } = (reply as { cpu: NodeJS.CpuUsage }).cpu
            answer(user + system)
          })
          child.send("cpu")
        })
      resolve({ mode, port, pid: child.pid ?? 0, cpuUs, stop })
    })
  })

export interface Reply {
  readonly status: number
  readonly body: string
  readonly cookie: string | undefined
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })

/** One request; `cookie` is the Set-Cookie of the reply, as a Cookie header value. */
export const request = (port: number, method: string, path: string, cookie?: string): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method, path, agent, headers: cookie === undefined ? {} : { cookie } },
      (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk) => (body += chunk))
        res.on("end", () => {
          const set = res.headers["set-cookie"]?.[0]
          resolve({ status: res.statusCode ?? 0, body, cookie: set?.split(";")[0] })
        })
      }
    )
    req.on("error", reject)
    req.end()
  })

/** Logs in once per cookie wanted; each login makes a session with our 20-field shape. */
export const login = async (port: number, count: number): Promise<Array<string>> => {
  const cookies: Array<string> = []
  for (let i = 0; i < count; i++) {
    const reply = await request(port, "GET", "/login")
    if (reply.status !== 200 || reply.cookie === undefined) {
      throw new Error(`login answered ${reply.status} ${reply.body} without a cookie`)
    }
    cookies.push(reply.cookie)
  }
  return cookies
}

export interface LoadOptions {
  readonly port: number
  readonly connections: number
  readonly durationS: number
  /** The request cycle of one connection, given its cookie (if any). */
  readonly cycle: (cookie: string | undefined) => ReadonlyArray<Request>
  readonly cookies: ReadonlyArray<string>
}

/** Runs autocannon; connection `i` sends `cookies[i % cookies.length]`. */
export const load = (options: LoadOptions): Promise<Result> =>
  new Promise((resolve, reject) => {
    let next = 0
    autocannon({
      url: `http://127.0.0.1:${options.port}`,
      connections: options.connections,
      duration: options.durationS,
      setupClient: (client) => {
        const cookie = options.cookies.length === 0 ? undefined : options.cookies[next++ % options.cookies.length]
        client.setRequests(options.cycle(cookie))
      }
    }, (error, result) => (error ? reject(error) : resolve(result)))
  })
