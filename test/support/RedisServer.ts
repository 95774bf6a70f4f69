/**
 * Real `redis-server` processes for tests: a free loopback port or a unix
 * socket under a fresh temp dir, no persistence, optional `requirepass`.
 * Servers can be SIGKILLed, frozen (SIGSTOP) and restarted on the same
 * address for fault tests. Every server is stopped at process exit, and a
 * watchdog kills it if the test process itself is killed.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./Processes.js"

/** ioredis options without `replyMapping`, whose declared type clashes with exactOptionalPropertyTypes. */
export type ClientOptions = Omit<RedisOptions, "replyMapping">

/** Options of {@link start}. */
export interface StartOptions {
  /** Sets `--requirepass`. */
  readonly password?: string | undefined
  /** Listen on a unix socket under the temp dir instead of a TCP port. */
  readonly unixSocket?: boolean | undefined
  /** Extra `redis-server` arguments, e.g. `["--enable-debug-command", "yes"]`. */
  readonly args?: ReadonlyArray<string> | undefined
  /** How long to wait for the server to answer PING (default 10 s). */
  readonly readyTimeoutMs?: number | undefined
}

/** Where a server listens, as SessionStore settings. */
export interface Address {
  readonly server?: string
  readonly sock?: string
  readonly password?: string
}

/** The outcome of {@link RedisServer.countCommandsDuring}. */
export interface CommandCount<A> {
  readonly value: A
  /** Calls per command name (lowercase, `"client|setinfo"` for subcommands), without INFO and CONFIG. */
  readonly commands: Readonly<Record<string, number>>
  /** The sum of `commands`. */
  readonly total: number
}

/** A running (or killed, restartable) redis-server. */
export interface RedisServer {
  readonly host: "127.0.0.1"
  /** The TCP port; 0 in unix socket mode. */
  readonly port: number
  readonly socket: string | undefined
  readonly password: string | undefined
  /** `"127.0.0.1:PORT"` (meaningless in unix socket mode). */
  readonly server: string
  /** `redis://[:password@]127.0.0.1:PORT`. */
  readonly url: string
  /** The temp dir holding the socket and any files redis writes. */
  readonly dir: string
  /** The pid of the current process, if it runs. */
  readonly pid: () => number | undefined
  /** Plain SessionStore settings pointing here (`server` or `sock`, and `password`), merged with `extra`. */
  readonly settings: <X extends object = Record<never, never>>(extra?: X) => Address & X
  /** A raw inspection client; closed by `stop`. */
  readonly client: (options?: ClientOptions) => Redis
  /** SIGKILLs the process and waits for it to exit. */
  readonly kill: () => Promise<void>
  /** SIGSTOPs the process: the kernel still accepts connections, but nothing answers (a hung server). */
  readonly freeze: () => void
  /** SIGCONTs a frozen process. */
  readonly thaw: () => void
  /**
   * How many client connections have bytes waiting that the server has not read (Linux, TCP mode:
   * from /proc/net/tcp). With the server frozen, this tells when a client's command has arrived.
   */
  readonly connectionsWithUnreadInput: () => number
  /** Starts the process again on the same address with the same arguments and waits until it answers. */
  readonly restart: () => Promise<void>
  /** Kills the process, closes the inspection clients and removes the temp dir. Idempotent. */
  readonly stop: () => Promise<void>
  /** Calls per command since the last CONFIG RESETSTAT, from INFO commandstats, without INFO and CONFIG. */
  readonly commandStats: () => Promise<Record<string, number>>
  /** Resets the command stats, runs `f`, and reports which commands the server processed meanwhile. */
  readonly countCommandsDuring: <A>(f: () => Promise<A>) => Promise<CommandCount<A>>
  /** {@link countCommandsDuring} for an Effect. */
  readonly countCommands: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<CommandCount<A>, E, R>
}

const HOST = "127.0.0.1" as const
const OUTPUT_TAIL = 4096

/** Every server not yet stopped, so that process exit can kill them all. */
const running = new Set<{ readonly current: () => Running | undefined; readonly dir: string }>()
let exitHookInstalled = false

const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on("exit", () => {
    for (const entry of running) {
      const proc = entry.current()
      stopWatching(proc?.watchdog)
      const pid = proc?.child.pid
      if (pid !== undefined) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // already gone
        }
      }
      rmSync(entry.dir, { recursive: true, force: true })
    }
  })
}

/** Sends AUTH (if needed) and PING over a raw socket; resolves true when PONG comes back. */
const pingOnce = (target: { port: number } | { path: string }, password: string | undefined): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.createConnection(target)
    let reply = ""
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once("error", () => done(false))
    socket.once("connect", () => {
      // RESP arrays, so that any password bytes survive.
      const cmd = (...parts: Array<string>) =>
        `*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join("")
      socket.write((password === undefined ? "" : cmd("AUTH", password)) + cmd("PING"))
    })
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8")
      if (reply.includes("+PONG\r\n")) done(true)
      else if (reply.startsWith("-") && reply.includes("\r\n") && !reply.startsWith("-LOADING")) done(false)
    })
  })

class ProcessExited extends Error {}

interface Running {
  readonly child: ChildProcess
  readonly watchdog: ChildProcess | undefined
  readonly exited: Promise<void>
  readonly output: () => string
}

/**
 * A process that SIGKILLs the server and removes its dir once our end of its
 * stdin closes: when this process dies without running its exit hook (a test
 * runner's SIGKILL or SIGTERM), the server does not outlive it. When we stop a
 * server ourselves we SIGKILL the watchdog first, so it never acts on a pid
 * that may have been reused.
 */
const watch = (pid: number, dir: string): ChildProcess => {
  const watchdog = spawn("sh", [
    "-c",
    "read _; kill -9 \"$1\" 2>/dev/null; rm -rf \"$2\"",
    "redis-watchdog",
    String(pid),
    dir
  ], {
    stdio: ["pipe", "ignore", "ignore"],
    detached: true
  })
  watchdog.on("error", () => {})
  watchdog.unref()
  if (watchdog.stdin instanceof net.Socket) watchdog.stdin.unref()
  return watchdog
}

const stopWatching = (watchdog: ChildProcess | undefined) => {
  if (watchdog !== undefined && watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill("SIGKILL")
}

const launch = (args: ReadonlyArray<string>, dir: string): Running => {
  const child = spawn("redis-server", [...args], { stdio: ["ignore", "pipe", "pipe"] })
  const watchdog = child.pid === undefined ? undefined : watch(child.pid, dir)
  child.once("exit", () => stopWatching(watchdog))
  let output = ""
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_TAIL)
  }
  child.stdout?.on("data", collect)
  child.stderr?.on("data", collect)
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once("exit", () => resolve())
  })
  child.once("error", (error) => collect(Buffer.from(`spawn error: ${error.message}\n`)))
  return { child, watchdog, exited, output: () => output }
}

const waitReady = async (
  proc: Running,
  target: { port: number } | { path: string },
  password: string | undefined,
  timeoutMs: number
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let dead = false
  void proc.exited.then(() => {
    dead = true
  })
  for (let attempt = 0;; attempt++) {
    if (dead) throw new ProcessExited(proc.output())
    if (await pingOnce(target, password)) return
    if (dead) throw new ProcessExited(proc.output())
    if (Date.now() > deadline) {
      stopWatching(proc.watchdog)
      proc.child.kill("SIGKILL")
      await proc.exited
      throw new Error(`redis-server did not answer PING within ${timeoutMs} ms; output:\n${proc.output()}`)
    }
    // Poll interval, not a wait for a fixed outcome: either the process dies or PING succeeds.
    await Promise.race([proc.exited, new Promise((r) => setTimeout(r, Math.min(5 * (attempt + 1), 50)))])
  }
}

const connectionsWithUnreadInput = (port: number): number => {
  if (port === 0) throw new Error("connectionsWithUnreadInput needs a TCP server")
  const local = `:${port.toString(16).toUpperCase().padStart(4, "0")}`
  let count = 0
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/)
    // sl local_address rem_address st tx_queue:rx_queue ...; st 01 = ESTABLISHED.
    if (fields.length < 5 || !fields[1]!.endsWith(local) || fields[3] !== "01") continue
    if (parseInt(fields[4]!.split(":")[1]!, 16) > 0) count++
  }
  return count
}

const parseCommandStats = (info: string): Record<string, number> => {
  const stats: Record<string, number> = {}
  for (const line of info.split(/\r?\n/)) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line)
    if (match === null) continue
    const name = match[1]!
    if (name === "info" || name === "config" || name.startsWith("config|")) continue
    stats[name] = Number(match[2])
  }
  return stats
}

/**
 * Starts a redis-server and waits until it answers PING. Rejects with its
 * output when it exits or does not answer in time.
 */
export const start = async (options: StartOptions = {}): Promise<RedisServer> => {
  installExitHook()
  const dir = mkdtempSync(join(tmpdir(), "esr-redis-"))
  const password = options.password
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000
  const socket = options.unixSocket === true ? join(dir, "redis.sock") : undefined
  const common = ["--bind", HOST, "--save", "", "--appendonly", "no", "--dir", dir]
  const auth = password === undefined ? [] : ["--requirepass", password]
  const extra = options.args ?? []

  let args: ReadonlyArray<string> = []
  let port = 0
  let current: Running | undefined
  const entry = { current: () => current, dir }
  running.add(entry)

  try {
    if (socket !== undefined) {
      args = ["--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", ...common, ...auth, ...extra]
      current = launch(args, dir)
      await waitReady(current, { path: socket }, password, readyTimeoutMs)
    } else {
      for (let attempt = 1;; attempt++) {
        // Free a moment ago: redis may still lose a race for it, hence the retry below.
        port = await freePort()
        args = ["--port", String(port), ...common, ...auth, ...extra]
        current = launch(args, dir)
        try {
          await waitReady(current, { port }, password, readyTimeoutMs)
          break
        } catch (error) {
          // Another process took the port between our probe and redis's bind: try another one.
          if (
            error instanceof ProcessExited && /already in use|Could not create server TCP/i.test(error.message) &&
            attempt < 5
          ) {
            continue
          }
          throw error
        }
      }
    }
  } catch (error) {
    running.delete(entry)
    rmSync(dir, { recursive: true, force: true })
    if (error instanceof ProcessExited) {
      throw new Error(`redis-server exited before it was ready (args: ${args.join(" ")}); output:\n${error.message}`)
    }
    throw error
  }

  const clients = new Set<Redis>()
  let stopped = false
  let statsClient: Redis | undefined
  const target = socket !== undefined ? { path: socket } : { port }

  const client = (clientOptions: ClientOptions = {}): Redis => {
    const redis = new Redis({
      ...(socket !== undefined ? { path: socket } : { host: HOST, port }),
      ...(password !== undefined ? { password } : {}),
      // Inspection clients must never hang a test: fail fast when the server is down.
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      ...clientOptions
    })
    // A killed server makes clients emit errors; they are expected, not crashes.
    redis.on("error", () => {})
    clients.add(redis)
    return redis
  }

  const kill = async (): Promise<void> => {
    const proc = current
    if (proc === undefined) return
    stopWatching(proc.watchdog)
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill("SIGKILL")
    await proc.exited
  }

  const signal = (name: NodeJS.Signals) => () => {
    const proc = current
    if (proc === undefined || proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`cannot send ${name}: redis-server is not running`)
    }
    proc.child.kill(name)
  }

  const restart = async (): Promise<void> => {
    if (stopped) throw new Error("restart after stop")
    await kill()
    current = launch(args, dir)
    try {
      await waitReady(current, target, password, readyTimeoutMs)
    } catch (error) {
      if (error instanceof ProcessExited) {
        throw new Error(`redis-server exited on restart (args: ${args.join(" ")}); output:\n${error.message}`)
      }
      throw error
    }
  }

  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    for (const c of clients) c.disconnect()
    clients.clear()
    await kill()
    current = undefined
    running.delete(entry)
    rmSync(dir, { recursive: true, force: true })
  }

  const stats = (): Redis => (statsClient ??= client())

  const commandStats = async (): Promise<Record<string, number>> =>
    parseCommandStats(await stats().info("commandstats"))

  const countCommandsDuring = async <A>(f: () => Promise<A>): Promise<CommandCount<A>> => {
    await stats().config("RESETSTAT")
    const value = await f()
    const commands = await commandStats()
    return { value, commands, total: Object.values(commands).reduce((a, b) => a + b, 0) }
  }

  const countCommands = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<CommandCount<A>, E, R> =>
    Effect.gen(function*() {
      yield* Effect.promise(() => stats().config("RESETSTAT"))
      const value = yield* effect
      const commands = yield* Effect.promise(commandStats)
      return { value, commands, total: Object.values(commands).reduce((a, b) => a + b, 0) }
    })

  const userinfo = password === undefined ? "" : `:${encodeURIComponent(password)}@`
  return {
    host: HOST,
    port,
    socket,
    password,
    server: `${HOST}:${port}`,
    url: `redis://${userinfo}${HOST}:${port}`,
    dir,
    pid: () => current?.child.pid,
    settings: <X extends object = Record<never, never>>(extra: X = {} as X) => {
      const base: Address = {
        ...(socket !== undefined ? { sock: socket } : { server: `${HOST}:${port}` }),
        ...(password !== undefined ? { password } : {})
      }
      return { ...base, ...extra }
    },
    client,
    kill,
    connectionsWithUnreadInput: () => connectionsWithUnreadInput(port),
    freeze: signal("SIGSTOP"),
    thaw: signal("SIGCONT"),
    restart,
    stop,
    commandStats,
    countCommandsDuring,
    countCommands
  }
}

/** A server for the life of a scope: started on acquire, stopped on release. */
export const scoped = (options?: StartOptions): Effect.Effect<RedisServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => start(options)),
    (server) => Effect.promise(() => server.stop())
  )

/** The server of a {@link layer}, for tests that share one server. */
export class TestRedis extends Context.Tag("test/TestRedis")<TestRedis, RedisServer>() {}

/** A server as a layer, e.g. for `layer(RedisServer.layer())("suite", (it) => ...)` in @effect/vitest. */
export const layer = (options?: StartOptions): Layer.Layer<TestRedis> => Layer.scoped(TestRedis, scoped(options))

/**
 * Polls `effect` until it succeeds, every `intervalMs`, failing with its last
 * error after `timeoutMs`. Uses wall-clock time, so it works under TestClock too.
 */
export const eventually = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: { readonly timeoutMs?: number; readonly intervalMs?: number } = {}
): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const deadline = Date.now() + (options.timeoutMs ?? 20_000)
    const pause = Effect.promise(() => new Promise((r) => setTimeout(r, options.intervalMs ?? 20)))
    const loop: Effect.Effect<A, E, R> = Effect.catchAll(
      effect,
      (error) => Date.now() > deadline ? Effect.fail(error) : Effect.zipRight(pause, Effect.suspend(() => loop))
    )
    return loop
  })

/**
 * Fails the test (a defect naming `what`) if `effect` has not finished after
 * `ms` of wall-clock time. A loose guard against hangs, not a timing assertion;
 * it does not depend on TestClock.
 */
export const hangGuard =
  (ms: number, what: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.raceFirst(
      effect,
      Effect.flatMap(
        Effect.async<void>((resume) => {
          const timer = setTimeout(() => resume(Effect.void), ms)
          return Effect.sync(() => clearTimeout(timer))
        }),
        () => Effect.dieMessage(`hang guard: ${what} did not finish within ${ms} ms`)
      )
    )
