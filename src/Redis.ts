/**
 * The ioredis connection as a scoped resource: bounded timeouts, automatic
 * reconnection, error mapping to typed errors, and debug logging to stderr.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis as IORedis, type RedisOptions, ReplyError } from "ioredis"
import type { SessionConfig } from "./SessionConfig.js"
import { type ConnectionReason, RedisCommandError, RedisConnectionError } from "./SessionError.js"

/**
 * The ioredis options this library sets. `replyMapping` is left out: ioredis
 * declares it twice, incompatibly under `exactOptionalPropertyTypes`, and the
 * legacy mapping is what we want.
 *
 * @since 0.1.0
 * @category models
 */
export type Options = Omit<RedisOptions, "replyMapping">

/**
 * A live connection and the one way to run commands on it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** The ioredis client; use {@link Connection.run} so failures stay typed. */
  readonly client: IORedis
  /**
   * Runs `f` on the client. Every ioredis failure becomes a typed error, and
   * the whole call is bounded by the command timeout even if ioredis never
   * settles its promise.
   */
  readonly run: <A>(
    method: string,
    command: string,
    key: string,
    f: (client: IORedis) => Promise<A>
  ) => Effect.Effect<A, RedisConnectionError | RedisCommandError>
  /** Logs a line to stderr when `debug` is on; free otherwise. */
  readonly debug: (message: string) => Effect.Effect<void>
}

/**
 * Options for {@link make} beyond the settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  /** Shown in CLIENT LIST and in debug lines. */
  readonly name?: string | undefined
  /** Extra ioredis options, e.g. `protocol: 2` for a subscriber. */
  readonly overrides?: Options | undefined
}

/**
 * Builds the ioredis options from the settings. Timeouts are bounded so that
 * a command issued while Redis is down fails within `commandTimeout` instead
 * of ioredis's default of over a minute, and reconnection backs off to at
 * most one second so that service resumes quickly once Redis is back.
 *
 * @since 0.1.0
 * @category constructors
 */
export const options = (config: SessionConfig, name: string): Options => {
  const commandTimeout = Duration.toMillis(config.commandTimeout)
  return {
    ...(config.server !== undefined ? { host: config.server.host, port: config.server.port } : {}),
    ...(config.sock !== undefined ? { path: config.sock } : {}),
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: Redacted.value(config.password) } : {}),
    ...(config.url?.startsWith("rediss:") === true ? { tls: {} } : {}),
    db: config.database,
    connectionName: name,
    lazyConnect: true,
    connectTimeout: Duration.toMillis(config.connectTimeout),
    commandTimeout,
    // A server that accepts but never answers is caught here; connectTimeout covers only the TCP connect.
    socketTimeout: commandTimeout * 2,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1000),
    enableAutoPipelining: config.autoPipelining,
    keepAlive: 10_000
  }
}

const reasonOf = (cause: unknown): ConnectionReason | undefined => {
  if (!(cause instanceof Error)) return undefined
  const message = cause.message
  if (/^(WRONGPASS|NOAUTH)\b/.test(message)) return "Authentication"
  if (cause instanceof ReplyError) return undefined
  if (cause.name === "MaxRetriesPerRequestError") return "Closed"
  const code = (cause as NodeJS.ErrnoException).code
  if (code === "ECONNREFUSED" || code === "ENOENT") return "Refused"
  if (code === "ETIMEDOUT" || /timed? ?out/i.test(message)) return "Timeout"
  if (/Connection is closed|isn't writeable|ECONNRESET|EPIPE|socket hang up/i.test(message)) return "Closed"
  return "Unknown"
}

/**
 * Maps an ioredis failure to a typed error: reply errors (WRONGTYPE, OOM, ...)
 * become `RedisCommandError`, everything about the transport and
 * authentication becomes `RedisConnectionError` with a reason.
 *
 * @since 0.1.0
 * @category errors
 */
export const toError = (method: string, command: string, cause: unknown): RedisConnectionError | RedisCommandError => {
  const reason = reasonOf(cause)
  return reason === undefined
    ? new RedisCommandError({ method, command, cause })
    : new RedisConnectionError({ method, reason, cause })
}

/**
 * ioredis bounds each command with `commandTimeout`; this guard only makes a
 * hang impossible whatever ioredis does. A plain timer costs far less on the
 * hot path than racing fibers with `Effect.timeout`.
 */
const bounded = <A>(promise: Promise<A>, millis: number, command: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} timed out: no reply within ${millis}ms`)), millis)
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error) => (clearTimeout(timer), reject(error))
    )
  })

// Session ids are bearer tokens: debug lines show only enough to correlate.
const maskKey = (key: string): string => key.length > 16 ? `${key.slice(0, key.length - 37)}…` : key

const stderrLogger = Logger.withConsoleError(Logger.logfmtLogger)

const makeDebug = (enabled: boolean, name: string) =>
  enabled
    ? (message: string): Effect.Effect<void> =>
      Effect.logDebug(message).pipe(
        Effect.annotateLogs("redis", name),
        // The seed printed every Redis interaction whatever the app's log setup: so do we, on stderr.
        Effect.locally(FiberRef.currentLoggers, HashSet.make(stderrLogger)),
        Effect.locally(FiberRef.currentMinimumLogLevel, LogLevel.Debug)
      )
    : (_message: string): Effect.Effect<void> => Effect.void

/**
 * Connects to Redis as the settings say, PINGs, and closes the connection
 * (QUIT) when the scope closes. Fails with `RedisConnectionError` within
 * `connectTimeout` when Redis cannot be reached or rejects the credentials.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(config: SessionConfig, makeOptions: MakeOptions = {}) {
  const name = makeOptions.name ?? "effect-session-redis"
  const debug = makeDebug(config.debug, name)
  const redisOptions: Options = { ...options(config, name), ...makeOptions.overrides }
  const commandBound = Duration.sum(config.commandTimeout, Duration.millis(250))
  const commandBoundMillis = Duration.toMillis(commandBound)

  const client = yield* Effect.acquireRelease(
    Effect.sync(() => config.url === undefined ? new IORedis(redisOptions) : new IORedis(config.url, redisOptions)),
    (client) =>
      Effect.promise(() =>
        client.status === "ready"
          ? client.quit().then(() => undefined, () => client.disconnect())
          : Promise.resolve(client.disconnect())
      ).pipe(
        Effect.timeoutTo({ duration: commandBound, onSuccess: () => undefined, onTimeout: () => client.disconnect() })
      )
  )

  // ioredis reports connection trouble as events; without a listener it prints them. We keep the last
  // one, because a failed connect() rejects only with "Connection is closed." and hides the reason.
  let lastError: unknown = undefined
  client.on("error", (error: unknown) => {
    lastError = error
    if (config.debug) {
      Effect.runFork(debug(`connection error: ${error instanceof Error ? error.message : String(error)}`))
    }
  })
  if (config.debug) {
    for (const event of ["ready", "close", "reconnecting", "end"] as const) {
      client.on(event, () => Effect.runFork(debug(`connection ${event}`)))
    }
  }

  yield* Effect.tryPromise({
    try: () => client.connect().then(() => client.ping()),
    catch: (cause) => cause
  }).pipe(
    Effect.timeoutFail({
      duration: config.connectTimeout,
      onTimeout: () => new RedisConnectionError({ method: "connect", reason: "Timeout", cause: lastError })
    }),
    Effect.mapError((cause) =>
      cause instanceof RedisConnectionError
        ? cause
        : new RedisConnectionError({
          method: "connect",
          reason: reasonOf(lastError ?? cause) ?? "Unknown",
          cause: lastError ?? cause
        })
    ),
    Effect.tapError((error) =>
      Effect.zipRight(Effect.sync(() => client.disconnect()), debug(`connect failed: ${error.reason}`))
    ),
    Effect.tap(() => debug("connected"))
  )

  const run = <A>(method: string, command: string, key: string, f: (client: IORedis) => Promise<A>) => {
    const call = Effect.tryPromise({
      try: () => bounded(f(client), commandBoundMillis, command),
      catch: (cause) => toError(method, command, cause)
    })
    if (!config.debug) return call
    const started = performance.now()
    const target = key === "" ? "" : ` ${maskKey(key)}`
    const line = (outcome: string) => `${command}${target} ${(performance.now() - started).toFixed(2)}ms ${outcome}`
    return call.pipe(
      Effect.tapBoth({
        onSuccess: () => debug(line("ok")),
        onFailure: (error) => debug(line(`failed: ${error._tag}${"reason" in error ? ` (${error.reason})` : ""}`))
      })
    )
  }

  const connection: Connection = { client, run, debug }
  return connection
}) satisfies (
  config: SessionConfig,
  options?: MakeOptions
) => Effect.Effect<Connection, RedisConnectionError, Scope.Scope>
