/**
 * Every session of a store, for the few callers that need them all: the
 * express-session adapter's optional `all`, `length` and `clear`. The store
 * keeps no index of its sessions, so this is a SCAN over the keys under the
 * prefix (on every master of a Cluster), in pages, each call bounded by
 * `commandTimeout`; on the in-memory backend, a walk over its map. It is an
 * administrative operation: its cost grows with the number of sessions.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { globalValue } from "effect/GlobalValue"
import * as Option from "effect/Option"
import { Cluster } from "ioredis"
import type { Session } from "../Session.js"
import type { SessionConfig } from "../SessionConfig.js"
import type { SessionStoreError } from "../SessionError.js"
import type { SessionStore } from "../SessionStore.js"
import * as Codec from "./codec.js"
import type * as Redis from "./redis.js"

/**
 * What a store can enumerate.
 *
 * @internal
 */
export interface Enumeration {
  /** The id of every stored session, each once, in no particular order. */
  readonly ids: Effect.Effect<ReadonlyArray<string>, SessionStoreError>
  /** A session as stored, without refreshing its lifetime or filling the near-cache; `None` when gone. */
  readonly peek: (id: string) => Effect.Effect<Option.Option<Session>, SessionStoreError>
}

// Global, so that two copies of this module (an ES module and a CommonJS one, say) share it.
const registry = globalValue(
  Symbol.for("effect-session-redis/Enumeration"),
  () => new WeakMap<SessionStore, Enumeration>()
)

/**
 * Records how `store` enumerates its sessions; returns the store.
 *
 * @internal
 */
export const register = (store: SessionStore, enumeration: Enumeration): SessionStore => {
  registry.set(store, enumeration)
  return store
}

/**
 * How `store` enumerates its sessions: `undefined` for a store this library did not make.
 *
 * @internal
 */
export const of = (store: SessionStore): Enumeration | undefined => registry.get(store)

// SCAN's MATCH is a glob: the prefix is matched literally.
const glob = (prefix: string): string => `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`

const pageSize = 1000

/**
 * The Redis backend's enumeration: `SCAN … MATCH <prefix>* TYPE hash` (the
 * per-user index keys are sorted sets, so they are skipped), page by page, on
 * the one server or on every master of a Cluster.
 *
 * @internal
 */
export const redis = (
  config: SessionConfig,
  connection: Redis.Connection,
  isOver: (session: Session, now: number) => boolean
): Enumeration => {
  const pattern = glob(config.prefix)
  const prefixLength = config.prefix.length
  type Scanner = Pick<Redis.Client, "scan">
  const scanAll = (node: Scanner, into: Set<string>) =>
    Effect.iterate("0", {
      while: (cursor) => cursor !== "",
      body: (cursor) =>
        Effect.map(
          connection.run(
            "ExpressStore.all",
            "SCAN",
            config.prefix,
            () => node.scan(cursor, "MATCH", pattern, "COUNT", pageSize, "TYPE", "hash")
          ),
          ([next, keys]) => {
            for (const key of keys) into.add(key.slice(prefixLength))
            // A full iteration ends when SCAN hands back cursor 0.
            return next === "0" ? "" : next
          }
        )
    })
  const ids = Effect.suspend(() => {
    const found = new Set<string>()
    const client = connection.client
    const nodes: ReadonlyArray<Scanner> = client instanceof Cluster ? client.nodes("master") : [client]
    return Effect.map(Effect.forEach(nodes, (node) => scanAll(node, found), { discard: true }), () => [...found])
  })
  const peek = (id: string) =>
    Effect.flatMap(
      connection.run("ExpressStore.all", "HGETALL", config.prefix + id, (client) => client.hgetall(config.prefix + id)),
      (fields) =>
        Either.match(Codec.decode(id, fields), {
          onLeft: (error) => Effect.fail(error),
          onRight: (found) =>
            Effect.map(Clock.currentTimeMillis, (now) => Option.filter(found, (session) => !isOver(session, now)))
        })
    )
  return { ids, peek }
}

/**
 * The in-memory backend's enumeration, over its map of entries (`current` reads it).
 *
 * @internal
 */
export const memory = (
  current: Effect.Effect<
    ReadonlyMap<string, { readonly fields: Readonly<Record<string, string>>; readonly expiresAt: number }>
  >
): Enumeration => ({
  ids: Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.map(current, (map) => {
      const ids: Array<string> = []
      for (const [id, entry] of map) if (entry.expiresAt > now) ids.push(id)
      return ids
    })),
  peek: (id) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(current, (map) => {
        const entry = map.get(id)
        return entry === undefined || entry.expiresAt <= now
          ? Effect.succeedNone
          : Either.match(Codec.decode(id, entry.fields), { onLeft: Effect.fail, onRight: Effect.succeed })
      }))
})
