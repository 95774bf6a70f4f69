/**
 * The ioredis connection as a scoped resource: bounded timeouts, automatic
 * reconnection, error mapping to typed errors, and debug logging to stderr.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { type Cluster, Redis as IORedis, type RedisOptions } from "ioredis"
import { readFileSync } from "node:fs"
import type { ConnectionOptions as TlsOptions } from "node:tls"
import type { SessionConfig } from "../SessionConfig.js"
import { type ConnectionReason, RedisCommandError, RedisConnectionError, SessionConfigError } from "../SessionError.js"
import * as Redact from "./redact.js"
import * as RedisCluster from "./redisCluster.js"
import * as RedisUrl from "./redisUrl.js"
import { maxTimerMillis } from "./schema.js"
import * as SentinelWatch from "./sentinelWatch.js"

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
 * The client of a connection: one Redis (standalone or behind Sentinel), or a
 * Redis Cluster, which routes each command to the master of its key's slot.
 *
 * @since 0.2.0
 * @category models
 */
export type Client = IORedis | Cluster

/**
 * A live connection and the one way to run commands on it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** The ioredis client; use {@link Connection.run} so failures stay typed. */
  readonly client: Client
  /**
   * Runs `f` on the client. Every ioredis failure becomes a typed error, and
   * the whole call is bounded by the command timeout even if ioredis never
   * settles its promise.
   */
  readonly run: <A>(
    method: string,
    command: string,
    key: string,
    f: (client: Client) => Promise<A>
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
 * The wait before reconnect attempt `attempt`: 50 ms doubling per attempt, at
 * most one second; for every connection the library keeps.
 *
 * @internal
 */
export const backoffMillis = (attempt: number): number => Math.min(50 * 2 ** attempt, 1000)

/**
 * Builds the ioredis options from the settings. Timeouts are bounded so that
 * a command issued while Redis is down fails within `commandTimeout` instead
 * of ioredis's default of over a minute, and reconnection backs off to at
 * most one second so that service resumes quickly once Redis is back. Every
 * timer fits Node's (at most 2^31 − 1 ms; a longer one would fire at once).
 *
 * @since 0.1.0
 * @category constructors
 */
export const options = (config: SessionConfig, name: string): Options => {
  const commandTimeout = Duration.toMillis(config.commandTimeout)
  const tls = tlsOptions(config)
  return {
    ...(config.server !== undefined ? { host: config.server.host, port: config.server.port } : {}),
    ...(config.sock !== undefined ? { path: config.sock } : {}),
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: Redacted.value(config.password) } : {}),
    ...(tls !== undefined ? { tls } : {}),
    ...(config.sentinels !== undefined ? sentinelOptions(config, tls) : {}),
    db: config.database,
    connectionName: name,
    lazyConnect: true,
    connectTimeout: Duration.toMillis(config.connectTimeout),
    // No `commandTimeout`: ioredis would set a timer per command (five per flush) and `delete` it from
    // the Command, about 30 µs of CPU per HTTP write. `run` bounds every call with one timer instead.
    // A Cluster adds it back (see RedisCluster.options): its retries run inside one call.
    // A server that accepts but never answers is caught here; connectTimeout covers only the TCP connect.
    socketTimeout: Math.min(commandTimeout * 2, maxTimerMillis),
    maxRetriesPerRequest: 1,
    // ioredis sends commands that were unanswered when a connection dropped again on the next one. By
    // then their callers have been told they failed, and a session write replayed late would overwrite
    // newer ones (a lost update). What the server received before the drop may still run; nothing more.
    autoResendUnfulfilledCommands: false,
    retryStrategy: backoffMillis,
    // ioredis's disconnect() ends the socket and arms a timer (2 s by default) to destroy it if the
    // server does not close it first, even when the socket is closed already (a refused connect):
    // that timer kept a process alive 2 s after a failed open. The store disconnects only connections
    // it gives up on (never ready, or QUIT failed), where no reply is worth waiting for.
    disconnectTimeout: 0,
    enableAutoPipelining: config.autoPipelining,
    keepAlive: 10_000
  }
}

const sentinelOptions = (config: SessionConfig, tls: TlsOptions | undefined): Options => ({
  sentinels: config.sentinels!.map(({ host, port }) => ({ host, port })),
  name: config.sentinelMaster!,
  ...(config.sentinelPassword !== undefined ? { sentinelPassword: Redacted.value(config.sentinelPassword) } : {}),
  // The sentinels and the data nodes use the same TLS settings.
  ...(tls !== undefined ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
  sentinelCommandTimeout: Duration.toMillis(config.connectTimeout),
  sentinelRetryStrategy: backoffMillis,
  // Failovers are followed at once, not at the next error, by our own subscribers on the sentinels
  // (SentinelWatch): ioredis's `failoverDetector` connections have no error listener, and print.
  // A demoted master answers writes with READONLY until its clients are killed: ask the sentinels again.
  reconnectOnError: (error) => error.message.startsWith("READONLY") ? 2 : false
})

/**
 * A PEM setting: the text itself, or the file that holds it. The value of a
 * secret one (the private key) is never quoted: a key pasted without its
 * "-----BEGIN" line reads as a path that cannot be opened.
 */
const pem = (field: string, value: string, secret = false): string => {
  if (value.includes("-----BEGIN")) return value
  try {
    return readFileSync(value, "utf8")
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error"
    throw new SessionConfigError({
      field,
      detail: secret
        ? `Expected PEM text (with its -----BEGIN line) or the path of a readable PEM file (${code})`
        : `Expected PEM text or a readable PEM file, could not read ${JSON.stringify(value)}: ${code}`
    })
  }
}

/**
 * The Node TLS options from the settings, or undefined without TLS. Throws a
 * `SessionConfigError` naming the field of an unreadable PEM file.
 *
 * @since 0.2.0
 * @category constructors
 */
export const tlsOptions = (config: SessionConfig): TlsOptions | undefined => {
  const tls = config.tls
  const on = tls !== undefined ? tls.enabled : config.url?.startsWith("rediss:") === true
  if (!on) return undefined
  if (tls === undefined) return {}
  return {
    ...(tls.ca !== undefined ? { ca: pem("tls.ca", tls.ca) } : {}),
    ...(tls.cert !== undefined ? { cert: pem("tls.cert", tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: pem("tls.key", Redacted.value(tls.key), true) } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    rejectUnauthorized: tls.rejectUnauthorized
  }
}

/**
 * Why a failure is a connection failure, or `undefined` for a reply error.
 * Works on the sanitized copy (see Redact.error), so it looks at names, not classes.
 *
 * @internal
 */
export const reasonOf = (cause: unknown): ConnectionReason | undefined => {
  if (!(cause instanceof Error)) return undefined
  const message = cause.message
  if (/^(WRONGPASS|NOAUTH)\b/.test(message)) return "Authentication"
  // The slot's master is unreachable or failing over, or no node answers CLUSTER SLOTS.
  if (
    /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN)\b|Failed to refresh slots cache|All nodes failed|None of startup nodes|Too many Cluster redirections|Cluster isn't ready|Cluster is disconnected|Node is disconnected/
      .test(message)
  ) {
    return "Cluster"
  }
  // A failover in progress: the node was demoted (READONLY) or is loading its data set (LOADING). Not a
  // refused command: the store reconnects (or re-resolves the slot) and the next call succeeds.
  if (/^(READONLY|LOADING)\b/.test(message)) return "Closed"
  // A WAIT cut short because its node changed role (a failover): the write may or may not be on the
  // new master, exactly as when too few replicas confirm in time.
  if (/^UNBLOCKED\b/.test(message)) return "Replication"
  if (cause.name === "ReplyError") return undefined
  if (cause.name === "MaxRetriesPerRequestError") return "Closed"
  const code = (cause as NodeJS.ErrnoException).code
  if (
    typeof code === "string" &&
    /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|HOSTNAME_MISMATCH)/.test(code)
  ) return "Tls"
  if (/certificate|SSL routines|TLS/i.test(message) && !/timed? ?out/i.test(message)) return "Tls"
  if (code === "ECONNREFUSED" || code === "ENOENT") return "Refused"
  // ioredis's Sentinel connector, once no sentinel answered (or none knew the master): the reason of
  // the last sentinel's failure, when it tells one.
  if (/^All sentinels are unreachable/.test(message)) {
    const last = /Last error: (.*)$/.exec(message)?.[1]
    const reason = last === undefined ? undefined : reasonOf(new Error(last))
    return reason === undefined || reason === "Unknown" ? "Refused" : reason
  }
  if (code === "ETIMEDOUT" || /timed? ?out/i.test(message)) return "Timeout"
  if (/Connection is closed|isn't writeable|ECONNRESET|EPIPE|socket hang up/i.test(message)) return "Closed"
  return "Unknown"
}

/**
 * Maps an ioredis failure to a typed error: reply errors (WRONGTYPE, OOM, ...)
 * become `RedisCommandError`, everything about the transport and
 * authentication becomes `RedisConnectionError` with a reason. The error
 * keeps only the failure's name, message and code, with `secrets` (and any
 * url credentials) removed: never the ioredis error itself, whose
 * `command.args` may hold `AUTH user <password>` or session values.
 *
 * @since 0.1.0
 * @category errors
 */
export const toError = (
  method: string,
  command: string,
  cause: unknown,
  secrets: ReadonlyArray<string> = []
): RedisConnectionError | RedisCommandError => {
  const clean = Redact.error(cause, secrets)
  const reason = reasonOf(clean)
  return reason === undefined
    ? new RedisCommandError({ method, command, cause: clean })
    : new RedisConnectionError({ method, reason, cause: clean })
}

/**
 * The secrets that the settings hold, to be kept out of every error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const secretsOf = (config: SessionConfig): ReadonlyArray<string> => [
  ...(config.password === undefined ? [] : [Redacted.value(config.password)]),
  ...(config.sentinelPassword === undefined ? [] : [Redacted.value(config.sentinelPassword)]),
  ...Redact.secretsOfUrl(config.url)
]

/**
 * Bounds one call (one command, or a MULTI or pipeline of several) with one
 * timer: the command timeout. A plain timer costs far less on the hot path
 * than racing fibers with `Effect.timeout`, or ioredis's timer per command.
 */
/** @internal */
export const bounded = <A>(promise: Promise<A>, millis: number, command: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} timed out: no reply within ${millis}ms`)), millis)
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error) => (clearTimeout(timer), reject(error))
    )
  })

// Session ids are bearer tokens: debug lines show only enough to correlate.
/** @internal */
export const maskKey = (key: string): string => key.length > 16 ? `${key.slice(0, key.length - 37)}…` : key

const stderrLogger = Logger.withConsoleError(Logger.logfmtLogger)

/** @internal */
export const makeDebug = (enabled: boolean, name: string) =>
  enabled
    ? (message: string): Effect.Effect<void> =>
      Effect.logDebug(message).pipe(
        Effect.annotateLogs("redis", name),
        // The seed printed every Redis interaction whatever the app's log setup: so do we, on stderr.
        Effect.locally(FiberRef.currentLoggers, HashSet.make(stderrLogger)),
        Effect.locally(FiberRef.currentMinimumLogLevel, LogLevel.Debug)
      )
    : (_message: string): Effect.Effect<void> => Effect.void

/** ioredis keeps the failed command on a reply error; a failed handshake SELECT means a missing database. */
const isSelectFailure = (error: unknown): boolean =>
  error instanceof Error && error.name === "ReplyError" &&
  (error as { readonly command?: { readonly name?: unknown } }).command?.name === "select"

/**
 * Builds a client's options; a TLS file that cannot be read is a setting
 * error that names `tls`.
 *
 * @internal
 */
export const clientOptions = <A>(build: () => A): Effect.Effect<A, SessionConfigError> =>
  Effect.try({
    try: build,
    catch: (error) =>
      error instanceof SessionConfigError
        ? error
        : new SessionConfigError({ field: "tls", detail: error instanceof Error ? error.message : String(error) })
  })

/**
 * The bound of one call, within Node's timers: the command timeout, and
 * `slack` more where the client bounds each command itself (a Cluster).
 *
 * @internal
 */
export const commandBoundOf = (config: SessionConfig, slack = 0): number =>
  Math.min(Duration.toMillis(config.commandTimeout) + slack, maxTimerMillis)

/**
 * A client (a single server's or a Cluster's) as a scoped resource: closed with
 * QUIT when it is ready, within `boundMillis`, and disconnected otherwise.
 *
 * @internal
 */
export const scopedClient = <
  C extends { readonly status: string; readonly quit: () => Promise<unknown>; readonly disconnect: () => void }
>(make: () => C, boundMillis: number): Effect.Effect<C, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(make),
    (client) =>
      Effect.promise(() =>
        client.status === "ready"
          ? client.quit().then(() => undefined, () => client.disconnect())
          : Promise.resolve(client.disconnect())
      ).pipe(
        Effect.timeoutTo({
          duration: Duration.millis(boundMillis),
          onSuccess: () => undefined,
          onTimeout: () => client.disconnect()
        })
      )
  )

/**
 * Reconnects a client that ioredis has given up on ("end") while its scope is
 * open. ioredis ends a connection for good when its connector fails, and its
 * Sentinel connector fails whenever a `+switch-master` from a sentinel that
 * learnt of a failover late reaches the previous connection's failover detector
 * while the next connection is still asking the sentinels for the master
 * (ioredis 6.0.0 cleans that detector up only once a new socket is open). Left
 * alone, every later call would fail with "Connection is closed." until a
 * restart. (The store now follows failovers with its own subscribers, not
 * ioredis's detector; any other failure of the connector ends a connection
 * the same way, so the revival stays.)
 */
const reviveOnEnd = (client: IORedis): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    let closing = false
    let attempt = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    client.on("ready", () => (attempt = 0))
    client.on("end", () => {
      if (closing) return
      timer = setTimeout(() => client.connect().catch(() => undefined), backoffMillis(++attempt))
    })
    // Added after the client's own release, so it runs first: the QUIT or disconnect that closes
    // the scope ends the connection for good.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closing = true
        clearTimeout(timer)
      })
    )
  })

/**
 * Connects to Redis as the settings say, PINGs, and closes the connection
 * (QUIT) when the scope closes. Fails with `RedisConnectionError` within
 * `connectTimeout` when Redis cannot be reached or rejects the credentials,
 * and with a `SessionConfigError` naming `database` when the server has no
 * such database.
 *
 * While the connection is known to be down (closed, reconnecting, or its last
 * command timed out), {@link Connection.run} fails at once with
 * `RedisConnectionError` instead of queueing the command for up to
 * `commandTimeout`; it lets commands through again as soon as a new
 * connection is being set up or ready.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(config: SessionConfig, makeOptions: MakeOptions = {}) {
  if (config.cluster !== undefined) return yield* RedisCluster.make(config, makeOptions)
  const name = makeOptions.name ?? "effect-session-redis"
  const debug = makeDebug(config.debug, name)
  const secrets = secretsOf(config)
  const redisOptions: Options = yield* clientOptions(() => ({ ...options(config, name), ...makeOptions.overrides }))
  // Behind Sentinel, ioredis sleeps between rounds over the sentinels, on a timer nothing can cancel.
  // Until the first connection is up, and once the scope closes, there is no next round: an open
  // with every sentinel unreachable fails at once and leaves no timer behind.
  let sentinelRounds = false
  if (config.sentinels !== undefined) {
    redisOptions.sentinelRetryStrategy = (attempt) => sentinelRounds ? backoffMillis(attempt) : null
  }
  const commandBoundMillis = commandBoundOf(config)
  const client = yield* scopedClient(
    () => config.url === undefined ? new IORedis(redisOptions) : new IORedis(config.url, redisOptions),
    commandBoundMillis
  )

  // What the store knows about the connection, from ioredis's events. ioredis reports connection
  // trouble only as events (without a listener it prints them), and a failed connect() rejects with
  // just "Connection is closed.", so the last error is kept, sanitized: ioredis's own error objects
  // hold the AUTH arguments.
  let lastError: Error | undefined = undefined
  // The last command timed out: the server may be hung with its socket open, where no event comes.
  let unresponsive = false
  // This connection's handshake SELECT failed: it is on database 0, not ours, and must not be used.
  let wrongDatabase: Error | undefined = undefined
  // The same, sticky, for the first connect: the layer fails naming `database`.
  let databaseRejected: Error | undefined = undefined
  // Dropping the socket makes ioredis reconnect (and SELECT again) with its backoff.
  const dropSocket = () => client.stream?.destroy()
  yield* reviveOnEnd(client)

  client.on("error", (error: unknown) => {
    lastError = Redact.error(error, secrets)
    if (isSelectFailure(error)) {
      wrongDatabase = lastError
      databaseRejected = lastError
      dropSocket()
    }
    if (reasonOf(lastError) === "Timeout") unresponsive = true
    if (config.debug) Effect.runFork(debug(`connection error: ${lastError?.message ?? ""}`))
  })
  // A new handshake starts: its SELECT has yet to answer.
  client.on("connect", () => (wrongDatabase = undefined))
  client.on("ready", () => {
    if (wrongDatabase !== undefined) return
    unresponsive = false
    lastError = undefined
  })
  if (config.debug) {
    for (const event of ["ready", "close", "reconnecting", "end"] as const) {
      client.on(event, () => Effect.runFork(debug(`connection ${event}`)))
    }
  }

  const connectError = (cause: unknown) =>
    new RedisConnectionError({
      method: "connect",
      reason: reasonOf(lastError ?? Redact.error(cause, secrets)) ?? "Unknown",
      cause: lastError ?? Redact.error(cause, secrets)
    })

  const attempt = yield* Effect.tryPromise({
    try: () => client.connect().then(() => client.ping()),
    catch: connectError
  }).pipe(
    Effect.timeoutFail({
      duration: config.connectTimeout,
      onTimeout: () => new RedisConnectionError({ method: "connect", reason: "Timeout", cause: lastError })
    }),
    Effect.either
  )
  // ioredis only reports a failed SELECT as an event, and then carries on in database 0: the PING
  // succeeds, or the connect fails with "Connection is closed." once we drop the socket.
  const failure = databaseRejected !== undefined
    ? new SessionConfigError({
      field: "database",
      detail: `Expected a database this server has, got ${
        RedisUrl.describeDatabase(config.url, config.database)
      } (SELECT answered: ${(databaseRejected as Error).message})`
    })
    : Either.getLeft(attempt).pipe(Option.getOrUndefined)
  if (failure !== undefined) {
    client.disconnect()
    yield* debug(`connect failed: ${failure._tag === "RedisConnectionError" ? failure.reason : failure.message}`)
    return yield* Effect.fail(failure)
  }
  yield* debug("connected")
  if (config.sentinels !== undefined) yield* SentinelWatch.start(config, client, name, debug)
  sentinelRounds = true
  yield* Effect.addFinalizer(() => Effect.sync(() => (sentinelRounds = false)))

  // Fail fast while the connection is known to be down: otherwise ioredis queues the command until
  // it reconnects or `commandTimeout` passes, and every caller waits that long during an outage. A
  // connection in its handshake ("connect") takes commands: it is usually ready within a round trip,
  // and the command is sent as soon as it is. The status is read synchronously: ioredis emits its
  // events a tick after changing it.
  const unavailable = (method: string): RedisConnectionError | undefined => {
    const status = client.status
    const usable = (status === "ready" || status === "connect") && !unresponsive && wrongDatabase === undefined
    if (usable) return undefined
    const reason = unresponsive ? "Timeout" : wrongDatabase !== undefined ? "Closed" : reasonOf(lastError) ?? "Closed"
    return new RedisConnectionError({ method, reason, cause: lastError ?? new Error(`connection is ${status}`) })
  }

  // ioredis drops the commands in flight when a connection closes, without settling them
  // (autoResendUnfulfilledCommands is off; see `options`): an auto-pipeline among them would then
  // hold back every later command on the client for good, and a timer settling them later would
  // make a timeout on the next connection look like a hung server. They can get no reply now, so
  // they fail here, as closed. The "close" event comes a tick after the close, well before the next
  // connect replaces the queue.
  client.on("close", () => {
    const dropped = client.commandQueue
    for (let item = dropped.shift(); item !== undefined; item = dropped.shift()) {
      item.command.reject(new Error("Connection is closed."))
    }
  })

  const onFailure = (method: string, command: string, cause: unknown) => {
    const error = toError(method, command, cause, secrets)
    if (error._tag === "RedisConnectionError" && error.reason === "Timeout" && client.status === "ready") {
      // No event reports a hung server; stop sending to it, and let ioredis reconnect.
      unresponsive = true
      lastError = error.cause instanceof Error ? error.cause : lastError
      dropSocket()
    }
    return error
  }

  const run = <A>(method: string, command: string, key: string, f: (client: Client) => Promise<A>) => {
    const call = Effect.suspend(() => {
      const down = unavailable(method)
      if (down !== undefined) return Effect.fail(down)
      // Methods, not arrow properties: this runs for every command, and tsx (which the benchmarks
      // run under) would wrap a named arrow in a `__name` call each time.
      return Effect.tryPromise({
        try() {
          return bounded(f(client), commandBoundMillis, command)
        },
        catch(cause) {
          return onFailure(method, command, cause)
        }
      })
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
) => Effect.Effect<Connection, RedisConnectionError | SessionConfigError, Scope.Scope>
