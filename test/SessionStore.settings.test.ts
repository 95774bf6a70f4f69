/**
 * Settings that a real Redis (or Node) cannot honour fail when the layer is
 * built, naming the setting, instead of failing every later command or
 * silently doing something else.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SessionConfig, SessionStore } from "../src/index.js"
import * as Redis from "../src/internal/redis.js"
import * as RedisCluster from "../src/internal/redisCluster.js"
import { RedisServer } from "./support/index.js"

const build = (settings: SessionConfig.Input) =>
  Effect.map(Layer.build(SessionStore.layer(settings)), Context.get(SessionStore.SessionStore))

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))

describe("database", () => {
  it.scopedLive("a database the server does not have fails the layer with a SessionConfigError naming database", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const error = yield* Effect.flip(build(server.settings({ database: 99 })))
      expect(error._tag).toBe("SessionConfigError")
      expect(error._tag === "SessionConfigError" && error.field).toBe("database")
      expect(error.message).toContain("99")
      // Nothing was written to database 0 on the way.
      expect(yield* Effect.promise(() => server.client().dbsize())).toBe(0)
    }).pipe(RedisServer.hangGuard(20_000, "database 99")))

  // ioredis takes the url's database (its path, else ?db=) over the setting, and sent a word there to
  // SELECT as NaN: the handshake's error escaped as an uncaught exception (issue 19, point 3).
  it.scopedLive("a url whose database is not a number in range fails with a SessionConfigError naming url", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      for (const tail of ["/x", "?db=x", "/-1", "/1.5", "/03", "/2147483648", "/3/4", "/3?db=4"]) {
        const error = yield* Effect.flip(build({ url: `${server.url}${tail}` }))
        expect(error._tag, tail).toBe("SessionConfigError")
        expect(error._tag === "SessionConfigError" && error.field, tail).toBe("url")
      }
      expect(yield* Effect.promise(() => server.client().dbsize())).toBe(0)
    }).pipe(RedisServer.hangGuard(20_000, "url databases")))

  it.scopedLive("a url's database the server lacks is reported as that database, not 0", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      for (const tail of ["/99", "?db=99"]) {
        const error = yield* Effect.flip(build({ url: `${server.url}${tail}` }))
        expect(error._tag === "SessionConfigError" && error.field, tail).toBe("database")
        expect(error.message, tail).toContain("got 99")
      }
      // A url that names a database, with a database setting that says another: which one was meant?
      const conflict = yield* Effect.flip(build({ url: `${server.url}/3`, database: 5 }))
      expect(conflict._tag === "SessionConfigError" && conflict.field).toBe("database")
      // The url's database is the one used.
      const store = yield* build({ url: `${server.url}/2` })
      const created = yield* store.create({})
      const raw = server.client({ db: 2 })
      expect(yield* Effect.promise(() => raw.exists(`session:${created.id}`))).toBe(1)
    }).pipe(RedisServer.hangGuard(20_000, "url database 99")))

  it.scopedLive("the same from the environment fails with a ConfigError naming REDIS_SESSION_DATABASE", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped({ args: ["--databases", "4"] })
      const error = yield* Effect.flip(
        Layer.build(SessionStore.layerConfig()).pipe(
          withEnv({ REDIS_SESSION_SERVER: server.server, REDIS_SESSION_DATABASE: "4" })
        )
      )
      expect(error._tag).toBe("ConfigError")
      expect(error._tag === "ConfigError" && error._op).toBe("InvalidData")
      expect(String(error)).toContain("REDIS_SESSION")
      expect(String(error)).toContain("DATABASE")
    }).pipe(RedisServer.hangGuard(20_000, "REDIS_SESSION_DATABASE=4")))

  it.scopedLive("a SELECT refused on reconnect: calls fail with RedisConnectionError, nothing lands in database 0", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const admin = server.client()
      yield* Effect.promise(() => admin.call("ACL", "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all"))
      const store = yield* build({
        server: server.server,
        username: "app",
        password: "app-pw",
        database: 3,
        connectTimeout: 1000,
        commandTimeout: 10_000
      })
      yield* store.create({ before: true })
      // Reconnects may no longer SELECT (as after a restart with fewer databases).
      yield* Effect.promise(() => admin.call("ACL", "SETUSER", "app", "-select"))
      yield* Effect.promise(() => admin.call("CLIENT", "KILL", "USER", "app"))
      const error = yield* RedisServer.eventually(
        Effect.flatMap(
          Effect.flip(store.create({ during: true })),
          (error) =>
            error._tag === "RedisConnectionError" && /select/i.test(error.message)
              ? Effect.succeed(error)
              : Effect.fail(error)
        ),
        { timeoutMs: 20_000, intervalMs: 10 }
      )
      expect(error._tag).toBe("RedisConnectionError")
      expect(yield* Effect.promise(() => admin.dbsize())).toBe(0)
      // Once SELECT works again, the store recovers on its own, in its own database.
      yield* Effect.promise(() => admin.call("ACL", "SETUSER", "app", "+select"))
      const after = yield* RedisServer.eventually(store.create({ after: true }), { timeoutMs: 20_000, intervalMs: 25 })
      expect(yield* Effect.promise(() => server.client({ db: 3 }).exists(`session:${after.id}`))).toBe(1)
      expect(yield* Effect.promise(() => admin.dbsize())).toBe(0)
    }).pipe(RedisServer.hangGuard(40_000, "SELECT refused on reconnect")))

  it.scopedLive("the highest database the server has is used, not database 0", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped({ args: ["--databases", "4"] })
      const store = yield* build(server.settings({ database: 3 }))
      const created = yield* store.create({ a: 1 })
      const raw = server.client({ db: 3 })
      expect(yield* Effect.promise(() => raw.exists(`session:${created.id}`))).toBe(1)
      expect(yield* Effect.promise(() => server.client().dbsize())).toBe(0)
    }).pipe(RedisServer.hangGuard(20_000, "database 3")))
})

describe("durations Redis and Node can honour", () => {
  it.scopedLive("a fractional expire is rounded up to whole milliseconds, and PEXPIRE accepts it", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      for (const expire of ["1000.5 millis", 0.0015, 1.0005] as const) {
        const store = yield* build(server.settings({ expire, cache: { enabled: false } }))
        const created = yield* store.create({ a: 1 })
        const pttl = yield* Effect.promise(() => server.client().pttl(`session:${created.id}`))
        expect(pttl).toBeLessThanOrEqual(Math.ceil(Duration.toMillis(Duration.decode(
          typeof expire === "number" ? Duration.seconds(expire) : expire
        ))))
        yield* store.touch(created.id)
        // The read refreshes the lifetime too (PEXPIRE inside MULTI), and must not be refused.
        yield* Effect.asVoid(store.retrieve(created.id))
      }
    }).pipe(RedisServer.hangGuard(20_000, "fractional expire")))

  it.effect.each(
    [
      ["expire", { expire: 1e17 }],
      ["expire", { expire: "1e20 millis" }],
      ["connectTimeout", { connectTimeout: 2 ** 31 }],
      ["commandTimeout", { commandTimeout: 2 ** 31 }],
      ["commandTimeout", { commandTimeout: "30 days" }],
      ["cache.maxStaleness", { cache: { maxStaleness: 1e20 } }]
    ] as const
  )("%s out of range is rejected when decoding", ([field, input]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(SessionConfig.decode({ server: "127.0.0.1:1", ...input }))
      expect(error.field).toBe(field)
    }))

  it("every timer ioredis derives from the settings fits Node's timers", () => {
    const config = SessionConfig.decodeSync({
      server: "127.0.0.1:1",
      connectTimeout: 2 ** 31 - 1,
      commandTimeout: 2 ** 31 - 1
    })
    const options = Redis.options(config, "x")
    const cluster = RedisCluster.options(config, "x").redisOptions ?? {}
    for (
      const value of [
        options.connectTimeout,
        options.socketTimeout,
        cluster.commandTimeout,
        Redis.commandBoundOf(config),
        Redis.commandBoundOf(config, 250)
      ]
    ) {
      expect(Number.isInteger(value)).toBe(true)
      expect(value).toBeLessThanOrEqual(2 ** 31 - 1)
    }
  })
})
