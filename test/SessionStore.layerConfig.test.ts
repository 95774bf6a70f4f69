/**
 * `SessionStore.layerConfig` with variables of the app's choosing, as
 * `Config.Config.Wrap` allows, against a real redis-server.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SessionStore } from "../src/index.js"
import { RedisServer } from "./support/index.js"

describe("SessionStore.layerConfig with renamed variables", () => {
  it.scopedLive("reads each setting from the Config the app gives, decoded by the same Schema", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const layer = SessionStore.layerConfig({
        server: Config.string("MY_REDIS_ADDR"),
        expire: Config.string("MY_SESSION_TTL"),
        prefix: Config.succeed("app1:")
      })
      const provider = ConfigProvider.fromMap(
        new Map([["MY_REDIS_ADDR", server.server], ["MY_SESSION_TTL", "2 minutes"]])
      )
      const context = yield* Layer.build(Layer.provide(layer, Layer.setConfigProvider(provider)))
      const store = Context.get(context, SessionStore.SessionStore)
      expect(Duration.toMinutes(store.expire)).toBe(2)
      const session = yield* store.create({ n: 1 })
      expect(Option.map(yield* store.retrieve(session.id), (s) => s.data)).toEqual(Option.some({ n: 1 }))
      expect(yield* Effect.promise(() => server.client().exists(`app1:${session.id}`))).toBe(1)
    }))

  it.effect("a rejected value fails with a ConfigError that names the setting", () =>
    Effect.gen(function*() {
      const layer = SessionStore.layerConfig({ server: Config.succeed("127.0.0.1:6380"), database: Config.succeed(-1) })
      const exit = yield* Effect.exit(Layer.build(layer).pipe(Effect.scoped))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? exit.cause : undefined
      const failure = error === undefined
        ? undefined
        : Option.getOrUndefined(Effect.runSync(Effect.option(Effect.flip(Effect.failCause(error)))))
      expect(ConfigError.isConfigError(failure)).toBe(true)
      expect(String(failure)).toContain("database")
    }))
})
