/**
 * Store instances for the deployment tests (TLS, Sentinel, Cluster): build
 * one in the test's scope, change field `v` of a session, and wait until an
 * instance serves a value.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type SessionConfig, SessionStore } from "../../src/index.js"
import * as RedisServer from "./RedisServer.js"

type Store = SessionStore.SessionStore

/** A store on its own connections, closed with the test's scope. */
export const instance = (settings: SessionConfig.Input) =>
  Effect.map(Layer.build(SessionStore.layer(settings)), Context.get(SessionStore.SessionStore))

/** Reads session `id` through `store` and flushes it with field `v` set to `value`. */
export const setField = (store: Store, id: string, value: unknown) =>
  Effect.flatMap(store.retrieve(id), (found) => {
    const session = Option.getOrThrow(found)
    return store.flush({ ...session, data: { ...session.data, v: value } })
  })

/** Polls until `store` serves `expected` for field `v`. */
export const untilSeen = (store: Store, id: string, expected: unknown) =>
  RedisServer.eventually(
    Effect.flatMap(store.retrieve(id), (found) => {
      const seen = Option.map(found, (s) => s.data.v)
      return Option.isSome(seen) && seen.value === expected
        ? Effect.void
        : Effect.fail(`still serving ${JSON.stringify(seen)}`)
    }),
    { timeoutMs: 15_000, intervalMs: 10 }
  )
