/**
 * The ioredis Cluster connection as a scoped resource: the same bounded
 * timeouts, fail-fast and typed errors as a single server, over a client
 * that routes each command to the master of its key's slot and follows
 * MOVED/ASK redirections and failovers by itself.
 *
 * @since 0.2.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Cluster } from "ioredis"
import type { SessionConfig } from "../SessionConfig.js"
import { RedisConnectionError, type SessionConfigError } from "../SessionError.js"
import * as Redact from "./redact.js"
import * as Redis from "./redis.js"

/**
 * What `new Cluster` takes.
 *
 * @since 0.2.0
 * @category models
 */
export type Options = NonNullable<ConstructorParameters<typeof Cluster>[1]>

/**
 * The ioredis Cluster options from the settings: every node connection gets
 * the single-server options (timeouts, credentials, TLS), minus what the
 * Cluster manages itself (address, reconnection, offline queue).
 *
 * @since 0.2.0
 * @category constructors
 */
export const options = (config: SessionConfig, name: string, overrides: Redis.Options = {}): Options => {
  const {
    enableAutoPipelining,
    host: _host,
    lazyConnect: _lazyConnect,
    path: _path,
    port: _port,
    retryStrategy: _retryStrategy,
    ...node
  } = { ...Redis.options(config, name), ...overrides }
  return {
    // A Cluster call may retry (MOVED, ASK, a failover) within `run`'s bound: each attempt gets
    // ioredis's own timeout, and the bound a little more (see `make`).
    redisOptions: { commandTimeout: Duration.toMillis(config.commandTimeout), ...node },
    lazyConnect: true,
    // Commands wait for the first slot map; afterwards `run` fails fast while the cluster is down.
    enableOfflineQueue: true,
    enableReadyCheck: true,
    ...(enableAutoPipelining !== undefined ? { enableAutoPipelining } : {}),
    // Only masters: a read from a replica could be older than a write we acknowledged.
    scaleReads: "master",
    clusterRetryStrategy: Redis.backoffMillis,
    slotsRefreshTimeout: Duration.toMillis(config.connectTimeout),
    // Picks up a failover that no command has run into yet (a MOVED or a closed node triggers it at once).
    slotsRefreshInterval: 2000,
    // A failover takes about cluster-node-timeout plus an election: retry within the command timeout.
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    retryDelayOnMoved: 0,
    maxRedirections: 16
  }
}

/**
 * Connects to a Redis Cluster from its seed nodes, waits until the slot map
 * is known and a master answers PING, and disconnects when the scope closes.
 * Fails with `RedisConnectionError` within `connectTimeout` when no seed
 * answers.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(config: SessionConfig, makeOptions: Redis.MakeOptions = {}) {
  const name = makeOptions.name ?? "effect-session-redis"
  const debug = Redis.makeDebug(config.debug, name)
  const secrets = Redis.secretsOf(config)
  const seeds = config.cluster!.map(({ host, port }) => ({ host, port }))
  const clusterOptions = yield* Redis.clientOptions(() => options(config, name, makeOptions.overrides))
  const commandBoundMillis = Redis.commandBoundOf(config, 250)
  const client = yield* Redis.scopedClient(() => new Cluster(seeds, clusterOptions), commandBoundMillis)

  let lastError: Error | undefined = undefined
  const remember = (error: unknown) => {
    lastError = Redact.error(error, secrets)
    if (config.debug) Effect.runFork(debug(`cluster error: ${lastError?.message ?? ""}`))
  }
  // Without listeners ioredis prints these; they are reported through `run`'s typed errors instead.
  client.on("error", remember)
  client.on("node error", remember)
  client.on("ready", () => (lastError = undefined))
  if (config.debug) {
    for (const event of ["ready", "close", "reconnecting", "end", "refresh", "+node", "-node"] as const) {
      client.on(event, () => Effect.runFork(debug(`cluster ${event}`)))
    }
  }

  const attempt = yield* Effect.tryPromise({
    try: () => client.connect().then(() => client.ping()),
    catch: (cause) => {
      const clean = lastError ?? Redact.error(cause, secrets)
      return new RedisConnectionError({ method: "connect", reason: Redis.reasonOf(clean) ?? "Unknown", cause: clean })
    }
  }).pipe(
    Effect.timeoutFail({
      duration: config.connectTimeout,
      onTimeout: () => new RedisConnectionError({ method: "connect", reason: "Timeout", cause: lastError })
    }),
    Effect.either
  )
  if (attempt._tag === "Left") {
    client.disconnect()
    yield* debug(`connect failed: ${attempt.left.reason}`)
    return yield* Effect.fail(attempt.left)
  }
  yield* debug("connected")

  // Fail fast while the whole cluster is known to be down (every node lost, the slot map being
  // fetched again): otherwise ioredis queues the command until it reconnects. A single master that
  // is gone is bounded by `commandTimeout` (ioredis retries its slots until a replica takes over).
  const unavailable = (method: string): RedisConnectionError | undefined => {
    const status = client.status
    if (status === "ready" || status === "connect") return undefined
    return new RedisConnectionError({
      method,
      reason: Redis.reasonOf(lastError) ?? "Cluster",
      cause: lastError ?? new Error(`cluster is ${status}`)
    })
  }

  const run = <A>(method: string, command: string, key: string, f: (client: Redis.Client) => Promise<A>) => {
    const call = Effect.suspend(() => {
      const down = unavailable(method)
      return down !== undefined ? Effect.fail(down) : Effect.tryPromise({
        try() {
          return Redis.bounded(f(client), commandBoundMillis, command)
        },
        catch: (cause) => Redis.toError(method, command, cause, secrets)
      })
    })
    if (!config.debug) return call
    const started = performance.now()
    const target = key === "" ? "" : ` ${Redis.maskKey(key)}`
    const line = (outcome: string) => `${command}${target} ${(performance.now() - started).toFixed(2)}ms ${outcome}`
    return call.pipe(
      Effect.tapBoth({
        onSuccess: () => debug(line("ok")),
        onFailure: (error) => debug(line(`failed: ${error._tag}${"reason" in error ? ` (${error.reason})` : ""}`))
      })
    )
  }

  const connection: Redis.Connection = { client, run, debug }
  return connection
}) satisfies (
  config: SessionConfig,
  options?: Redis.MakeOptions
) => Effect.Effect<Redis.Connection, RedisConnectionError | SessionConfigError, Scope.Scope>
