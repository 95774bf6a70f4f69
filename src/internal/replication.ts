/**
 * `waitReplicas`: a write is acknowledged only once `WAIT` confirms that many
 * replicas have it.
 *
 * WAIT blocks the connection it is sent on (it waits for the replication
 * offset of that connection's last write), and every command pipelined
 * behind it waits too. So WAITs are coalesced: at most one is in flight, and
 * the writes that complete meanwhile share the next one, sent when it
 * returns. A WAIT sent after a write's reply covers that write. Commands
 * behind a WAIT then wait at most `waitTimeout`, which the settings keep
 * below `commandTimeout`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { SessionConfig } from "../SessionConfig.js"
import { type RedisCommandError, RedisConnectionError } from "../SessionError.js"
import type * as Redis from "./redis.js"

type Outcome = Either.Either<number, RedisConnectionError | RedisCommandError>

/**
 * Makes the check run after each write; `Effect.void` when `waitReplicas` is 0.
 *
 * @internal
 */
export const make = (config: SessionConfig, connection: Redis.Connection) => {
  const required = config.waitReplicas
  const millis = Duration.toMillis(config.waitTimeout)
  let inFlight: Promise<Outcome> | undefined = undefined
  let queued: Promise<Outcome> | undefined = undefined

  const send = (): Promise<Outcome> => {
    const sent = Effect.runPromise(
      Effect.either(connection.run("replication", "WAIT", "", (client) => client.wait(required, millis)))
    ).finally(() => {
      if (inFlight === sent) inFlight = undefined
    })
    inFlight = sent
    return sent
  }

  const next = (): Promise<Outcome> => {
    if (inFlight === undefined) return send()
    queued ??= inFlight.then(() => {
      queued = undefined
      return send()
    })
    return queued
  }

  return (method: string): Effect.Effect<void, RedisConnectionError | RedisCommandError> =>
    required === 0 ? Effect.void : Effect.flatMap(Effect.promise(next), (outcome) =>
      Either.match(outcome, {
        onLeft: (error) => Effect.fail(error),
        onRight: (acknowledged) =>
          acknowledged >= required ? Effect.void : Effect.fail(
            new RedisConnectionError({
              method,
              reason: "Replication",
              cause: new Error(`WAIT: ${acknowledged} of ${required} replicas acknowledged within ${millis} ms`)
            })
          )
      }))
}
