/**
 * The app instances: each a child process serving the demo app on the same
 * Redis. Every child is killed when this process exits, however it exits.
 */
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"

/** What an instance reports of itself (see appServer.ts). */
export interface Stats {
  /** The heap, after two full GCs when asked for. */
  readonly heapUsed: number
  /** Request fibers alive. */
  readonly fibers: number
  /** Responses their clients closed before they were ended. */
  readonly aborted: number
}

export interface Instance {
  readonly name: string
  readonly port: number
  readonly pid: number | undefined
  /** Asks the instance for its stats, after full GCs when `gc`. */
  readonly stats: (gc: boolean) => Promise<Stats>
  /** How the child ended, if it ended before `stop`: a crash. */
  readonly crashed: () => string | undefined
  /** Asks the child to exit (closing its Redis connections), SIGKILL after 5 s. */
  readonly stop: () => Promise<void>
}

const entry = fileURLToPath(new URL("./appServer.ts", import.meta.url))
const children = new Set<ChildProcess>()

process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL")
})

/** Kills every child still running, at once (for SIGINT and failures). */
export const killAll = (): void => {
  for (const child of children) child.kill("SIGKILL")
}

/** Forks an app instance on `redisUrl`; resolves once it listens. */
export const start = (name: string, redisUrl: string, secret: string): Promise<Instance> =>
  new Promise((resolve, reject) => {
    const child = fork(entry, [], {
      env: { ...process.env, CHAOS_REDIS_URL: redisUrl, CHAOS_SECRET: secret },
      execArgv: [...process.execArgv, "--expose-gc"],
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    let asked = 0
    const stats = (gc: boolean) =>
      new Promise<Stats>((done) => {
        const id = ++asked
        const answer = (message: { readonly type?: string; readonly id?: number } & Stats) => {
          if (message.type !== "stats" || message.id !== id) return
          child.off("message", answer)
          done({ heapUsed: message.heapUsed, fibers: message.fibers, aborted: message.aborted })
        }
        child.on("message", answer)
        child.send({ type: "stats", id, gc })
      })
    children.add(child)
    let exitedWith: string | undefined
    const guard = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`app instance ${name} did not start within 30 s`))
    }, 30_000)
    child.once("exit", (code, signal) => {
      clearTimeout(guard)
      children.delete(child)
      exitedWith = `exited with ${code ?? signal}`
      reject(new Error(`app instance ${name} exited with ${code ?? signal}`))
    })
    child.once("message", (message) => {
      clearTimeout(guard)
      const port = (message as { port: number }).port
      const stop = () =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done()
          const hard = setTimeout(() => child.kill("SIGKILL"), 5_000)
          child.removeAllListeners("exit")
          child.once("exit", () => {
            clearTimeout(hard)
            children.delete(child)
            done()
          })
          child.kill("SIGTERM")
        })
      resolve({ name, port, pid: child.pid, stats, crashed: () => exitedWith, stop })
    })
  })
