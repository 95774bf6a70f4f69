/**
 * Follows the failovers that the sentinels announce. Each sentinel gets one
 * subscriber connection of ours on `+switch-master`; when our master group
 * moves, the client's socket is dropped, and ioredis reconnects through the
 * sentinels, which now name the new master.
 *
 * This replaces ioredis's own failover detector (`failoverDetector: true`),
 * whose connections to the sentinels have no `error` listener: a sentinel
 * that restarts or drops them made ioredis print "[ioredis] Unhandled error
 * event: … ECONNRESET" on every failover. Ours report errors to the `debug`
 * log, and reconnect with the store's backoff.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis as IORedis } from "ioredis"
import type { SessionConfig } from "../SessionConfig.js"
import * as Redact from "./redact.js"
import * as Redis from "./redis.js"

const channel = "+switch-master"

/**
 * Subscribes to `+switch-master` on every sentinel of `config` until the
 * scope closes, and drops `client`'s socket whenever `sentinelMaster` moves.
 * Never fails: a sentinel that cannot be reached now is retried in the
 * background, and the client also finds a new master by itself on its next
 * reconnect.
 *
 * @internal
 */
export const start = (
  config: SessionConfig,
  client: IORedis,
  name: string,
  debug: (message: string) => Effect.Effect<void>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.forEach(config.sentinels ?? [], ({ host, port }) =>
    Effect.gen(function*() {
      const secrets = Redis.secretsOf(config)
      const tls = yield* Effect.orElseSucceed(Redis.clientOptions(() => Redis.tlsOptions(config)), () => undefined)
      const sentinel = yield* Redis.scopedClient(
        () =>
          new IORedis({
            host,
            port,
            ...(config.sentinelPassword !== undefined ? { password: Redacted.value(config.sentinelPassword) } : {}),
            ...(tls !== undefined ? { tls } : {}),
            connectionName: `${name}:failovers`,
            // A subscriber: RESP2, re-subscribed after every reconnect, and never given up on.
            protocol: 2,
            autoResubscribe: true,
            maxRetriesPerRequest: null,
            lazyConnect: true,
            enableReadyCheck: false,
            connectTimeout: Redis.commandBoundOf(config),
            retryStrategy: Redis.backoffMillis,
            disconnectTimeout: 0
          }),
        Redis.commandBoundOf(config)
      )
      sentinel.on("error", (error: unknown) => {
        if (config.debug) {
          Effect.runFork(debug(`sentinel ${host}:${port} error: ${Redact.error(error, secrets)?.message ?? ""}`))
        }
      })
      sentinel.on("message", (from: string, message: string) => {
        // "<master name> <old ip> <old port> <new ip> <new port>"
        if (from !== channel || message.split(" ")[0] !== config.sentinelMaster) return
        if (config.debug) Effect.runFork(debug(`failover announced by sentinel ${host}:${port}`))
        // Only a connection that is (being) set up can be on the old master; one that is
        // reconnecting asks the sentinels anyway.
        if (client.status === "ready" || client.status === "connect") client.stream?.destroy()
      })
      // Connects (lazily) and subscribes; a sentinel that is down is retried with the backoff.
      sentinel.subscribe(channel).catch(() => undefined)
    }), { discard: true })
