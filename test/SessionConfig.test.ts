import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import { SessionConfig } from "../src/index.js"

const server = "127.0.0.1:7000"

const rejects = (input: unknown) =>
  Effect.flip(SessionConfig.decode(input)).pipe(
    Effect.tap((error) => {
      expect(error._tag).toBe("SessionConfigError")
      // The message a user sees names the field too.
      expect(error.message).toContain(error.field)
    })
  )

describe("SessionConfig.decode", () => {
  it.effect("fills the defaults", () =>
    Effect.gen(function*() {
      const config = yield* SessionConfig.decode({ server: "localhost" })
      expect(config.server).toEqual({ host: "localhost", port: 6379 })
      expect(config.sock).toBeUndefined()
      expect(config.url).toBeUndefined()
      expect(config.password).toBeUndefined()
      expect(config.database).toBe(0)
      expect(Duration.toSeconds(config.expire)).toBe(900)
      expect(config.debug).toBe(false)
      expect(config.prefix).toBe("session:")
      expect(Duration.toMillis(config.connectTimeout)).toBeGreaterThan(0)
      expect(Duration.toMillis(config.commandTimeout)).toBeGreaterThan(0)
      expect(config.cache.enabled).toBe(true)
      expect(config.cache.capacity).toBeGreaterThan(0)
      expect(config.cache.tracking).toBe(true)
      expect(config.autoPipelining).toBe(true)
    }))

  it.effect("reads every setting", () =>
    Effect.gen(function*() {
      const config = yield* SessionConfig.decode({
        server: "[::1]:6380",
        username: "app",
        password: "pw",
        database: 3,
        expire: 60,
        debug: true,
        prefix: "app:s:",
        connectTimeout: 500,
        commandTimeout: 250,
        autoPipelining: false,
        cache: { enabled: false, capacity: 7, tracking: false, maxStaleness: 100 }
      })
      expect(config.server).toEqual({ host: "::1", port: 6380 })
      expect(config.username).toBe("app")
      expect(config.database).toBe(3)
      expect(Duration.toSeconds(config.expire)).toBe(60)
      expect(config.debug).toBe(true)
      expect(config.prefix).toBe("app:s:")
      expect(Duration.toMillis(config.connectTimeout)).toBe(500)
      expect(Duration.toMillis(config.commandTimeout)).toBe(250)
      expect(config.autoPipelining).toBe(false)
      expect(config.cache).toEqual({ enabled: false, capacity: 7, tracking: false, maxStaleness: Duration.millis(100) })
    }))

  it.effect("wraps a plain password in Redacted and never prints it", () =>
    Effect.gen(function*() {
      const plain = yield* SessionConfig.decode({ server, password: "hunter2" })
      expect(Redacted.isRedacted(plain.password)).toBe(true)
      expect(Redacted.value(plain.password!)).toBe("hunter2")
      expect(String(plain.password)).not.toContain("hunter2")
      expect(JSON.stringify(plain)).not.toContain("hunter2")
      const wrapped = yield* SessionConfig.decode({ server, password: Redacted.make("hunter3") })
      expect(Redacted.value(wrapped.password!)).toBe("hunter3")
    }))

  it.effect.each(
    [
      [60, 60_000],
      ["60", 60_000],
      ["15 minutes", 900_000],
      ["2 hours", 7_200_000],
      [Duration.minutes(2), 120_000],
      [0.5, 500],
      // Redis counts whole milliseconds: a fraction is rounded up.
      [0.0015, 2],
      ["1000.5 millis", 1001],
      [1.0005, 1001]
    ] as const
  )("expire %s means %s ms", ([expire, millis]) =>
    Effect.gen(function*() {
      const config = yield* SessionConfig.decode({ server, expire })
      expect(Duration.toMillis(config.expire)).toBe(millis)
    }))

  it.effect.each(
    [
      ["sock", { sock: "/tmp/redis.sock" }],
      ["url", { url: "redis://127.0.0.1:7000" }],
      ["rediss url with credentials and db", { url: "rediss://user:pw@example.test:6380/2" }],
      ["server without port", { server: "redis.internal" }]
    ] as const
  )("accepts %s", ([_, input]) => Effect.asVoid(SessionConfig.decode(input)))

  it("timeouts are whole milliseconds up to Node's 2^31 − 1 ms timer limit", () => {
    const config = SessionConfig.decodeSync({ server, connectTimeout: 2 ** 31 - 1, commandTimeout: "1.2 millis" })
    expect(Duration.toMillis(config.connectTimeout)).toBe(2 ** 31 - 1)
    expect(Duration.toMillis(config.commandTimeout)).toBe(2)
  })

  it("decodeSync returns the settings or throws the SessionConfigError", () => {
    expect(SessionConfig.decodeSync({ server }).server).toEqual({ host: "127.0.0.1", port: 7000 })
    expect(() => SessionConfig.decodeSync({ server, database: -1 })).toThrow(/database/)
    try {
      SessionConfig.decodeSync({ server, expires: 1 })
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(SessionConfig.SessionConfigError)
      expect((error as SessionConfig.SessionConfigError).field).toBe("expires")
    }
  })
})

describe("SessionConfig.decode rejects bad settings, naming the field", () => {
  const table: ReadonlyArray<readonly [string, unknown, string | ReadonlyArray<string>]> = [
    ["server with port 0", { server: "a:0" }, "server"],
    ["server with port 70000", { server: "a:70000" }, "server"],
    ["server with a word for a port", { server: "a:b" }, "server"],
    ["server empty", { server: "" }, "server"],
    ["server not a string", { server: 7000 }, "server"],
    ["database -1", { server, database: -1 }, "database"],
    ["database 1.5", { server, database: 1.5 }, "database"],
    ["database as a string", { server, database: "3" }, "database"],
    ["expire 0", { server, expire: 0 }, "expire"],
    ["expire negative", { server, expire: -5 }, "expire"],
    ["expire infinite", { server, expire: Infinity }, "expire"],
    ["expire \"soon\"", { server, expire: "soon" }, "expire"],
    ["unknown key expires", { server, expires: 900 }, "expires"],
    ["unknown key host", { server, host: "x" }, "host"],
    ["url http://x", { url: "http://x" }, "url"],
    ["url not a url", { url: "redis://" + " spaces" }, "url"],
    ["url with a word for its database", { url: "redis://127.0.0.1:7000/x" }, "url"],
    ["url with a word for ?db=", { url: "redis://127.0.0.1:7000?db=x" }, "url"],
    ["url with a database past 2^31 − 1", { url: "redis://127.0.0.1:7000/2147483648" }, "url"],
    ["url database and a database setting that differ", { url: "redis://127.0.0.1:7000/3", database: 5 }, "database"],
    ["server and sock both", { server, sock: "/tmp/r.sock" }, ["server", "sock"]],
    ["server and url both", { server, url: "redis://127.0.0.1:7000" }, ["server", "url"]],
    ["nothing given", {}, ["server", "sock", "url"]],
    ["only a database", { database: 1 }, ["server", "sock", "url"]],
    ["sock empty", { sock: "" }, "sock"],
    ["password a number", { server, password: 42 }, "password"],
    ["username empty", { server, username: "" }, "username"],
    ["prefix empty", { server, prefix: "" }, "prefix"],
    ["debug \"yes\"", { server, debug: "yes" }, "debug"],
    ["connectTimeout 0", { server, connectTimeout: 0 }, "connectTimeout"],
    ["commandTimeout \"never\"", { server, commandTimeout: "never" }, "commandTimeout"],
    ["cache not an object", { server, cache: true }, "cache"],
    ["cache.capacity -1", { server, cache: { capacity: -1 } }, "cache.capacity"],
    ["cache.capacity 2.5", { server, cache: { capacity: 2.5 } }, "cache.capacity"],
    ["cache.enabled \"yes\"", { server, cache: { enabled: "yes" } }, "cache.enabled"],
    ["cache.maxStaleness \"later\"", { server, cache: { maxStaleness: "later" } }, "cache.maxStaleness"],
    ["expire 1e17 (beyond PEXPIRE's range and exact integers)", { server, expire: 1e17 }, "expire"],
    ["expire \"4000000 weeks\" (over 10^15 ms)", { server, expire: "4000000 weeks" }, "expire"],
    ["commandTimeout 2^31 ms (Node's timers overflow)", { server, commandTimeout: 2 ** 31 }, "commandTimeout"],
    ["connectTimeout 30 days", { server, connectTimeout: "30 days" }, "connectTimeout"],
    ["commandTimeout 0.5 ms (below 1 ms)", { server, commandTimeout: 0.5 }, "commandTimeout"],
    ["cache.maxStaleness 1e16", { server, cache: { maxStaleness: 1e16 } }, "cache.maxStaleness"],
    ["unknown cache key", { server, cache: { size: 3 } }, "cache.size"]
  ]

  it.effect.each(table)("%s", ([_, input, field]) =>
    Effect.gen(function*() {
      const error = yield* rejects(input)
      if (typeof field === "string") expect(error.field).toBe(field)
      else expect(field).toContain(error.field)
    }))

  it.effect.each([null, undefined, "server=127.0.0.1", 42, []])(
    "input %j is rejected",
    (input) => Effect.asVoid(rejects(input))
  )
})

describe("SessionConfig.config (Effect Config under REDIS_SESSION_*)", () => {
  const withEnv = (env: Record<string, string>) =>
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))

  it.effect("decodes every variable", () =>
    Effect.gen(function*() {
      const config = yield* SessionConfig.config.pipe(withEnv({
        REDIS_SESSION_SERVER: server,
        REDIS_SESSION_USERNAME: "app",
        REDIS_SESSION_PASSWORD: "pw",
        REDIS_SESSION_DATABASE: "4",
        REDIS_SESSION_EXPIRE: "15 minutes",
        REDIS_SESSION_DEBUG: "true",
        REDIS_SESSION_PREFIX: "p:",
        REDIS_SESSION_CONNECT_TIMEOUT: "750",
        REDIS_SESSION_COMMAND_TIMEOUT: "300",
        REDIS_SESSION_CACHE_ENABLED: "false",
        REDIS_SESSION_CACHE_CAPACITY: "12",
        REDIS_SESSION_CACHE_TRACKING: "false",
        REDIS_SESSION_CACHE_MAX_STALENESS: "250"
      }))
      expect(config.server).toEqual({ host: "127.0.0.1", port: 7000 })
      expect(config.username).toBe("app")
      expect(Redacted.value(config.password!)).toBe("pw")
      expect(config.database).toBe(4)
      expect(Duration.toSeconds(config.expire)).toBe(900)
      expect(config.debug).toBe(true)
      expect(config.prefix).toBe("p:")
      expect(Duration.toMillis(config.connectTimeout)).toBe(750)
      expect(Duration.toMillis(config.commandTimeout)).toBe(300)
      expect(config.cache).toEqual({
        enabled: false,
        capacity: 12,
        tracking: false,
        maxStaleness: Duration.millis(250)
      })
    }))

  it.effect("EXPIRE as a bare number means seconds, and defaults apply", () =>
    Effect.gen(function*() {
      const config = yield* SessionConfig.config.pipe(
        withEnv({ REDIS_SESSION_SOCK: "/tmp/r.sock", REDIS_SESSION_EXPIRE: "60" })
      )
      expect(config.sock).toBe("/tmp/r.sock")
      expect(Duration.toSeconds(config.expire)).toBe(60)
      expect(config.database).toBe(0)
      expect(config.cache.enabled).toBe(true)
    }))

  it.effect("configWithPrefix reads another prefix", () =>
    Effect.gen(function*() {
      const config = yield* SessionConfig.configWithPrefix("MYAPP_SESSION").pipe(
        withEnv({ MYAPP_SESSION_URL: "redis://127.0.0.1:7001/2", REDIS_SESSION_SERVER: server })
      )
      expect(config.url).toBe("redis://127.0.0.1:7001/2")
      expect(config.server).toBeUndefined()
    }))

  it.effect.each(
    [
      ["DATABASE", { REDIS_SESSION_SERVER: server, REDIS_SESSION_DATABASE: "three" }],
      ["DATABASE", { REDIS_SESSION_SERVER: server, REDIS_SESSION_DATABASE: "-1" }],
      ["DATABASE", { REDIS_SESSION_SERVER: server, REDIS_SESSION_DATABASE: "1.5" }],
      ["EXPIRE", { REDIS_SESSION_SERVER: server, REDIS_SESSION_EXPIRE: "soon" }],
      ["EXPIRE", { REDIS_SESSION_SERVER: server, REDIS_SESSION_EXPIRE: "0" }],
      ["DEBUG", { REDIS_SESSION_SERVER: server, REDIS_SESSION_DEBUG: "yes please" }],
      ["SERVER", { REDIS_SESSION_SERVER: "a:0" }],
      ["URL", { REDIS_SESSION_URL: "http://x" }],
      ["EXPIRE", { REDIS_SESSION_SERVER: server, REDIS_SESSION_EXPIRE: "1e17" }],
      ["COMMAND_TIMEOUT", { REDIS_SESSION_SERVER: server, REDIS_SESSION_COMMAND_TIMEOUT: "2147483648" }],
      ["CACHE_CAPACITY", { REDIS_SESSION_SERVER: server, REDIS_SESSION_CACHE_CAPACITY: "-1" }]
    ] as const
  )("a bad %s fails with a ConfigError naming it", ([name, env]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(SessionConfig.config.pipe(withEnv(env)))
      expect(String(error)).toContain(name)
    }))

  it.effect("nothing set fails", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(SessionConfig.config.pipe(withEnv({})))
      expect(Either.isLeft(result)).toBe(true)
    }))
})
