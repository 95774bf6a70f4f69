/**
 * What the parts of the Redis store share: the connection and its bounded
 * commands, the near-cache, key names, lifetimes, and the one way a write
 * reaches Redis (a script, or its `MULTI` fallback).
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Option from "effect/Option"
import { type ChainableCommander, Redis as IORedis } from "ioredis"
import type { SessionConfig } from "../SessionConfig.js"
import type { RedisCommandError, RedisConnectionError, SessionDecodeError, SessionStoreError } from "../SessionError.js"
import type * as SessionCache from "./cache.js"
import * as Session from "./codec.js"
import * as Redis from "./redis.js"
import * as Replication from "./replication.js"
import * as Scripts from "./scripts.js"
import * as Tracking from "./tracking.js"
import * as UserIndex from "./userIndex.js"

type ExecResult = Array<[error: Error | null, result: unknown]> | null

/**
 * The store's shared parts.
 *
 * @internal
 */
export interface Parts {
  readonly config: SessionConfig
  readonly connection: Redis.Connection
  readonly cache: SessionCache.SessionCache
  /** Captured once: the hit path reads the time without an effect of its own (TestClock still applies). */
  readonly clock: Clock.Clock
  readonly clustered: boolean
  /** The sliding lifetime, in milliseconds. */
  readonly ttl: number
  /** The absolute lifetime, in milliseconds, if any. */
  readonly absolute: number | undefined
  /** How often a session in use has its lifetime refreshed. */
  readonly refreshEvery: number
  readonly keyOf: (id: string) => string
  readonly indexOf: (user: string) => string
  /** What PEXPIRE gets: the sliding lifetime `life`, never reaching past the absolute one (≤ 0 deletes). */
  readonly lifetimeOf: (createdAt: number | undefined, now: number, life: number) => number
  /** A session's own sliding lifetime (its `$e` field), or the store's. */
  readonly lifeOf: (session: Session.Session) => number
  /** The lifetime a raw `$e` field gives, or the store's. */
  readonly storedLife: (raw: string | null | undefined) => number
  /** How often a session in use has its own lifetime refreshed: a tenth of it. */
  readonly refreshEveryOf: (session: Session.Session) => number
  /** Whether `session` is past its absolute lifetime. */
  readonly isOver: (session: Session.Session, now: number) => boolean
  /** The index part of a write binding `id` to `user` until `now + life`; pruning when `prune`. */
  readonly indexFor: (user: string, id: string, now: number, prune: boolean, life: number) => Scripts.IndexArgs
  /** With `waitReplicas`, waits until that many replicas have the write to `key`. */
  readonly replicated: (method: string, key: string) => Effect.Effect<void, RedisConnectionError | RedisCommandError>
  /** Several commands in one round trip: a MULTI, or a plain pipeline (named HGETALL in debug lines). */
  readonly batch: (
    method: string,
    command: "MULTI" | "HGETALL",
    key: string,
    build: (commands: ChainableCommander) => void
  ) => Effect.Effect<Array<unknown>, SessionStoreError>
  /**
   * Runs a write: `script` on `key` (and, on one server, the index's key), or, where scripts are
   * refused, `fallback`'s commands on a MULTI read by `read`. On a Cluster the index is on another
   * slot: its part is a transaction of its own, sent first and acknowledged before the session's,
   * so that a session is never live without being listed.
   */
  readonly write: (
    method: string,
    script: Scripts.Script,
    key: string,
    index: Scripts.IndexArgs | undefined,
    args: ReadonlyArray<string | number>,
    fallback: (multi: ChainableCommander) => void,
    read: (replies: ReadonlyArray<unknown>) => Scripts.Answer
  ) => Effect.Effect<Scripts.Answer, SessionStoreError>
  /**
   * Runs a script that is not a session write (`EVAL`, not a hot path), or, where scripts are refused,
   * `fallback`: the same steps as plain commands, without the script's atomicity.
   */
  readonly evalOr: (
    method: string,
    key: string,
    lua: string,
    args: ReadonlyArray<string | number>,
    fallback: (client: Redis.Client) => Promise<unknown>
  ) => Effect.Effect<unknown, SessionStoreError>
  /** Decodes a hash; a value that does not decode drops the id from the cache and fails. */
  readonly decodeOrDrop: (
    id: string,
    fields: Record<string, string>,
    previous: Session.Snapshot | undefined
  ) => Effect.Effect<Option.Option<Session.Session>, SessionDecodeError>
  /** A reply that failed may still have been executed: drops what we hold rather than guess. */
  readonly dropOnError: (id: string) => <A, E>(self: Effect.Effect<A, E>) => Effect.Effect<A, E>
}

/**
 * Makes the shared parts.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(
  config: SessionConfig,
  connection: Redis.Connection,
  cache: SessionCache.SessionCache
) {
  const clustered = config.cluster !== undefined
  const { run } = connection
  const ttl = Duration.toMillis(config.expire)
  const absolute = config.absoluteExpire === undefined ? undefined : Duration.toMillis(config.absoluteExpire)
  const waitReplicas = Replication.make(config, connection)
  // Sliding expiry costs a write, which Redis announces to the instances that track the session:
  // so the lifetime is refreshed only when a tenth of it has passed.
  const refreshEvery = Math.max(1, Math.floor(ttl / 10))
  const keyOf = (id: string) => config.prefix + id
  const indexOf = (user: string) => UserIndex.keyOf(config.prefix, user)

  const batch: Parts["batch"] = (method, command, key, build) =>
    Effect.flatMap(
      run(method, command, key, (client) => {
        const commands = command === "MULTI" ? client.multi() : client.pipeline()
        build(commands)
        return commands.exec() as Promise<ExecResult>
      }),
      (replies) => {
        const failed = replies?.find(([error]) => error !== null)?.[0]
        return replies === null || failed !== undefined
          ? Effect.fail(
            Redis.toError(method, command === "MULTI" ? "EXEC" : command, failed ?? new Error("transaction aborted"))
          )
          : Effect.succeed(replies.map(([, result]) => result))
      }
    )

  // Scripts, unless broadcasting (where Redis announces a script's writes to the writer itself: see
  // docs/caching.md) or the server has refused them once (an ACL without @scripting, a proxy).
  let scripted = Tracking.modeOf(config) !== "broadcast"
  const refused = (error: SessionStoreError) =>
    Effect.suspend(() => {
      if (!scripted) return Effect.void
      scripted = false
      return Effect.logWarning(
        `effect-session-redis: the server refuses scripts (${error.message}); ` +
          `writes fall back to MULTI transactions, which leave a flush of a destroyed session an invisible hash until it expires`
      )
    })
  // The index part as its own commands: a script on the server's clock, or plain commands on ours
  // where scripts are refused. Returns how many replies it queued.
  const bindOn = (index: Scripts.IndexArgs) => (multi: ChainableCommander) =>
    scripted
      ? UserIndex.bind(multi, index.key, index.member, index.ttl, index.prune)
      : UserIndex.bindWithoutScripts(multi, index.key, index.member, index.ttl, index.now, index.prune)

  const viaMulti = (
    method: string,
    key: string,
    index: Scripts.IndexArgs | undefined,
    fallback: (multi: ChainableCommander) => void,
    read: (replies: ReadonlyArray<unknown>) => Scripts.Answer
  ) =>
    index === undefined
      ? Effect.map(batch(method, "MULTI", key, fallback), read)
      : clustered
      ? Effect.zipRight(
        batch(method, "MULTI", index.key, bindOn(index)),
        Effect.map(batch(method, "MULTI", key, fallback), read)
      )
      : Effect.suspend(() => {
        let queued = 0
        return Effect.map(
          batch(method, "MULTI", key, (multi) => {
            queued = bindOn(index)(multi)
            fallback(multi)
          }),
          (replies) => read(replies.slice(queued))
        )
      })

  const viaScript = (
    method: string,
    script: Scripts.Script,
    key: string,
    index: Scripts.IndexArgs | undefined,
    args: ReadonlyArray<string | number>
  ) => {
    const send = (keys: ReadonlyArray<string>, all: ReadonlyArray<string | number>) =>
      Effect.map(
        run(method, `EVALSHA ${script.name}`, key, (client) => Scripts.evaluate(client, script, keys, all)),
        Scripts.answerOf
      )
    if (index === undefined) return send([key], args)
    if (clustered) return Effect.zipRight(batch(method, "MULTI", index.key, bindOn(index)), send([key], args))
    return send([key, index.key], [...args, ...Scripts.indexArgs(index)])
  }

  // Loaded at start and on every new connection (a restart or failover loses them), so that a write
  // rarely pays a NOSCRIPT round trip; where one is needed anyway (a Cluster node), `evaluate` sends
  // the text. A server that refuses scripts says so here, before the first write.
  const client = connection.client
  if (scripted && client instanceof IORedis) {
    const load = () => Promise.all(Scripts.all.map((s) => client.script("LOAD", s.lua)))
    yield* Effect.catchTag(
      connection.run("scripts", "SCRIPT LOAD", "", load),
      "RedisCommandError",
      (error) => Scripts.isRefused(error.cause) ? refused(error) : Effect.void
    )
    client.on("ready", () => void load().catch(() => undefined))
  }

  const write: Parts["write"] = (method, script, key, index, args, fallback, read) =>
    scripted
      ? Effect.catchIf(
        viaScript(method, script, key, index, args),
        (error) => Scripts.isRefused(error.cause),
        (error) => Effect.zipRight(refused(error), viaMulti(method, key, index, fallback, read))
      )
      : viaMulti(method, key, index, fallback, read)

  const evalOr: Parts["evalOr"] = (method, key, lua, args, fallback) => {
    const plain = Effect.suspend(() => connection.run(method, "(no scripts)", key, fallback))
    return scripted
      ? Effect.catchIf(
        connection.run(method, "EVAL", key, (client) => client.eval(lua, 1, key, ...args)),
        (error) => Scripts.isRefused(error.cause),
        (error) => Effect.zipRight(refused(error), plain)
      )
      : plain
  }

  const parts: Parts = {
    config,
    connection,
    cache,
    clock: yield* Effect.clock,
    clustered,
    ttl,
    absolute,
    refreshEvery,
    keyOf,
    indexOf,
    lifetimeOf: (createdAt, now, life) =>
      absolute === undefined || createdAt === undefined ? life : Math.min(life, createdAt + absolute - now),
    // Plain arithmetic on the hit path: no allocation, no effect.
    lifeOf: (session) => session.snapshot?.expire ?? ttl,
    storedLife: (raw) => {
      const own = raw === null || raw === undefined ? Number.NaN : Number(raw)
      return Number.isSafeInteger(own) && own > 0 ? own : ttl
    },
    refreshEveryOf: (session) => {
      const own = session.snapshot?.expire
      return own === undefined ? refreshEvery : Math.max(1, Math.floor(own / 10))
    },
    isOver: (session, now) =>
      absolute !== undefined && session.createdAt !== undefined && session.createdAt + absolute <= now,
    indexFor: (user, id, now, prune, life) => ({ key: indexOf(user), member: id, ttl: life, prune, now }),
    replicated: (method, key) => waitReplicas(method, key),
    batch,
    write,
    evalOr,
    decodeOrDrop: (id, fields, previous) => {
      const decoded = Session.decode(id, fields, previous)
      return Either.isRight(decoded) ? Effect.succeed(decoded.right) : Effect.zipRight(cache.remove(id), decoded)
    },
    dropOnError: (id) => (self) => Effect.tapError(self, () => cache.remove(id))
  }
  return parts
})
