/**
 * `store.redis`: raw access to the store's ioredis client, with failures kept
 * typed and bounded, on a real redis-server.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { RedisCommandError, SessionStore } from "../src/index.js"
import { RedisServer } from "./support/index.js"

describe("store.redis", () => {
  it.scopedLive("runs commands on the store's connection; a refused command is a RedisCommandError", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = Context.get(yield* Layer.build(SessionStore.layer(server.settings())), SessionStore.SessionStore)
      yield* store.redis((client) => client.set("app:counter", "41"))
      expect(yield* store.redis((client) => client.incr("app:counter"))).toBe(42)
      const refused = yield* Effect.flip(
        store.redis((client) => client.incr("app:missing-number-%").then(() => client.hincrby("app:counter", "x", 1)))
      )
      expect(refused).toBeInstanceOf(RedisCommandError)
      expect(refused.message).toContain("WRONGTYPE")
    }))

  it.effect("the in-memory backend has no Redis: a typed failure, not a crash", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore.makeMemory()
      const error = yield* Effect.flip(store.redis((client) => client.ping()))
      expect(error._tag).toBe("RedisCommandError")
    }))
})
