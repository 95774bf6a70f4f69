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
 *
 * On a Cluster, a write's replicas are those of its slot's master: the WAIT
 * goes to the connection ioredis used for that master, and coalescing is per
 * master.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Cluster } from "ioredis"
import type { SessionConfig } from "../SessionConfig.js"
import { type RedisCommandError, RedisConnectionError } from "../SessionError.js"
import type * as Redis from "./redis.js"
import * as Slots from "./slots.js"

type Outcome = Either.Either<number, RedisConnectionError | RedisCommandError>

/**
 * Makes the check run after each write; `Effect.void` when `waitReplicas` is 0.
 *
 * @internal
 */
export const make = (config: SessionConfig, connection: Redis.Connection) => {
  const required = config.waitReplicas
  const millis = Duration.toMillis(config.waitTimeout)
  // At most one WAIT in flight per connection, and one queued behind it for the writes meanwhile.
  const coalescer = (target: Pick<Redis.Client, "wait">) => {
    let inFlight: Promise<Outcome> | undefined = undefined
    let queued: Promise<Outcome> | undefined = undefined
    const send = (): Promise<Outcome> => {
      const sent = Effect.runPromise(
        Effect.either(connection.run("replication", "WAIT", "", () => target.wait(required, millis)))
      ).finally(() => {
        if (inFlight === sent) inFlight = undefined
      })
      inFlight = sent
      return sent
    }
    return (): Promise<Outcome> => {
      if (inFlight === undefined) return send()
      queued ??= inFlight.then(() => {
        queued = undefined
        return send()
      })
      return queued
    }
  }
  const client = connection.client
  const single = coalescer(client)
  const perMaster = new WeakMap<object, () => Promise<Outcome>>()
  const nextFor = (key: string): (() => Promise<Outcome>) | RedisConnectionError => {
    if (!(client instanceof Cluster)) return single
    const master = Slots.masterOf(client, key)
    if (master === undefined) {
      return new RedisConnectionError({
        method: "replication",
        reason: "Cluster",
        cause: new Error("the slot of the written key has no known master")
      })
    }
    let next = perMaster.get(master)
    if (next === undefined) perMaster.set(master, next = coalescer(master))
    return next
  }

  return (method: string, key: string): Effect.Effect<void, RedisConnectionError | RedisCommandError> => {
    if (required === 0) return Effect.void
    const next = nextFor(key)
    if (next instanceof RedisConnectionError) return Effect.fail(next)
    return Effect.flatMap(Effect.promise(next), (outcome) =>
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
}
