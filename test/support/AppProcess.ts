/**
 * App instances in processes of their own (appServer.ts), on one Redis, for
 * the tests of races between instances and of what aborted requests leave
 * behind. Each is started with `--expose-gc`, so that its heap can be
 * measured after a full collection, and is killed with the test's scope.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const entry = fileURLToPath(new URL("./appServer.ts", import.meta.url))

/** Settings of one instance. */
export interface Options {
  readonly redisUrl: string
  readonly secret: string
  readonly rolling?: boolean | undefined
  readonly commandTimeoutMs?: number | undefined
  readonly cacheCapacity?: number | undefined
}

/** A running instance. */
export interface AppProcess {
  readonly port: number
  readonly url: string
  readonly pid: number | undefined
}

const startProcess = (options: Options) =>
  new Promise<{ child: ChildProcess; port: number }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", entry], {
      env: {
        ...process.env,
        APP_REDIS: options.redisUrl,
        APP_SECRET: options.secret,
        APP_ROLLING: options.rolling === true ? "1" : "0",
        APP_COMMAND_TIMEOUT: String(options.commandTimeoutMs ?? 2000),
        APP_CACHE_CAPACITY: String(options.cacheCapacity ?? 10_000)
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    const guard = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error("test app did not start within 30 s"))
    }, 30_000)
    child.once("exit", (code, signal) => {
      clearTimeout(guard)
      reject(new Error(`test app exited with ${code ?? signal}`))
    })
    child.once("message", (message) => {
      clearTimeout(guard)
      resolve({ child, port: (message as { port: number }).port })
    })
  })

/** Starts an instance for the life of the scope. */
export const start = (options: Options): Effect.Effect<AppProcess, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.promise(() => startProcess(options)),
      ({ child }) =>
        Effect.promise(() =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            child.removeAllListeners("exit")
            child.once("exit", () => resolve())
            child.kill("SIGKILL")
          })
        )
    ),
    ({ child, port }) => ({ port, url: `http://127.0.0.1:${port}`, pid: child.pid })
  )
