/**
 * A newcomer's mistakes get an error (or a warning) that says how to fix
 * them (issue 20, points 1, 5 and 8): a short cookie secret says so without
 * showing it, a misspelt key or environment variable names the closest known
 * one, a url given as `server` points to `url`, a refused login says which
 * setting is missing, and `waitTimeout` follows `commandTimeout`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { HttpSession, SessionConfig, SessionStore } from "../src/index.js"
import { RedisServer } from "./support/index.js"

const secret = "a-cookie-secret-of-at-least-32-characters"

const optionError = (input: unknown) => Effect.runSync(Effect.flip(HttpSession.decodeOptions(input)))
const settingError = (input: unknown) => Effect.runSync(Effect.flip(SessionConfig.decode(input)))

/** Runs `effect` with a logger that keeps the warnings, and returns them. */
const warningsOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) lines.push(String(message))
    })
    const exit = yield* Effect.exit(
      Effect.locally(effect, FiberRef.currentLoggers, HashSet.make(logger))
    )
    return { exit, lines }
  })

/** Sets environment variables for the duration of `effect`. */
const withEnv = <A, E, R>(vars: Readonly<Record<string, string>>, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
      Object.assign(process.env, vars)
      return before
    }),
    () => effect,
    (before) =>
      Effect.sync(() => {
        for (const [k, v] of Object.entries(before)) {
          if (v === undefined) delete process.env[k]
          else process.env[k] = v
        }
      })
  )

describe("cookie secrets (point 1)", () => {
  it("says what is wrong with a secret, and never shows it", () => {
    const cases: ReadonlyArray<readonly [unknown, string, RegExp]> = [
      [{ secrets: ["abc"] }, "secrets.0", /at least 32 characters, got one of 3$/],
      [{ secrets: ["x".repeat(31)] }, "secrets.0", /at least 32 characters, got one of 31$/],
      // `process.env.SESSION_SECRET ?? ""` with the variable unset, as the README's example does.
      [{ secrets: [""] }, "secrets.0", /at least 32 characters, got an empty string \(is the variable/],
      [{ secrets: [secret, "short-one"] }, "secrets.1", /got one of 9$/],
      [{ secrets: "a-string-instead-of-a-list" }, "secrets", /Expected a list of secrets/],
      [{ secrets: [] }, "secrets", /Expected at least one secret/]
    ]
    for (const [input, field, detail] of cases) {
      const error = optionError(input)
      expect(error.field, JSON.stringify(input)).toBe(field)
      expect(error.detail, JSON.stringify(input)).toMatch(detail)
      for (const text of [error.message, String(error), JSON.stringify(error)]) {
        expect(text).not.toMatch(/abc|x{31}|short-one|a-string-instead/)
      }
    }
  })

  it("a value that is no string at all stays hidden: it may be the secret", () => {
    const error = optionError({ secrets: [31415926535] })
    expect(error.field).toBe("secrets.0")
    expect(error.detail).toBe("Expected a string or a Redacted string (the value given is not shown)")
    expect(JSON.stringify(error)).not.toContain("31415926535")
    const password = settingError({ server: "127.0.0.1:1", password: 27182818 })
    expect(String(password)).not.toContain("27182818")
  })

  it.effect("the middleware fails with the same message", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(HttpSession.middleware({ secrets: [process.env.NO_SUCH_SECRET ?? ""] }))
      expect(error.message).toContain("at least 32 characters")
    }))
})

describe("hints (point 8)", () => {
  it("an unknown key names the closest known one", () => {
    expect(settingError({ server: "h:1", expires: 60 })).toMatchObject({
      field: "expires",
      detail: "unknown setting: did you mean \"expire\"?"
    })
    expect(settingError({ server: "h:1", cache: { capcity: 5 } }).detail).toContain("did you mean \"capacity\"")
    expect(settingError({ server: "h:1", commandTimout: 5 }).detail).toContain("did you mean \"commandTimeout\"")
    expect(settingError({ server: "h:1", tls: { rejectUnauthorised: false } }).detail)
      .toContain("did you mean \"rejectUnauthorized\"")
    expect(optionError({ secrets: [secret], samesite: "lax" }).detail).toContain("did you mean \"sameSite\"")
    expect(optionError({ secrets: [secret], rollin: true }).detail).toContain("did you mean \"rolling\"")
    // Nothing close: no guess.
    expect(settingError({ server: "h:1", flavour: "vanilla" }).detail).toBe("unknown setting (check its spelling)")
  })

  it("a url given as server points to url, without its credentials", () => {
    const error = settingError({ server: "redis://user:hunter2@db.internal:6380" })
    expect(error.field).toBe("server")
    expect(error.detail).toContain("give it as `url` instead")
    expect(String(error)).not.toContain("hunter2")
  })

  it("a choice lists every valid value, and points out a difference of case", () => {
    expect(optionError({ secrets: [secret], sameSite: "Lax" }).detail).toBe(
      "Expected \"lax\", \"strict\" or \"none\", got \"Lax\" (did you mean \"lax\"?)"
    )
    expect(optionError({ secrets: [secret], cookieFormat: "express" }).detail).toBe(
      "Expected \"native\" or \"express-session\", got \"express\""
    )
    expect(optionError({ secrets: [secret], secure: "yes" }).detail).toBe(
      "Expected true, false or \"auto\", got \"yes\""
    )
  })

  it("waitTimeout defaults to at most half of commandTimeout; one given too long names both and the fix", () => {
    const sentinels = { sentinels: ["127.0.0.1:26379"], sentinelMaster: "m", waitReplicas: 1 }
    expect(Duration.toMillis(SessionConfig.decodeSync(sentinels).waitTimeout)).toBe(1000)
    expect(Duration.toMillis(SessionConfig.decodeSync({ ...sentinels, commandTimeout: 1000 }).waitTimeout)).toBe(500)
    expect(
      Duration.toMillis(SessionConfig.decodeSync({ ...sentinels, commandTimeout: 500, waitTimeout: 100 }).waitTimeout)
    )
      .toBe(100)
    const error = settingError({ ...sentinels, commandTimeout: 1000, waitTimeout: "2 seconds" })
    expect(error.field).toBe("waitTimeout")
    expect(error.detail).toContain("commandTimeout (1000 ms)")
    expect(error.detail).toContain("lower waitTimeout, raise commandTimeout, or leave waitTimeout out")
  })

  it.live("a server that needs a password says which setting to set; a wrong one says to check it", () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.scoped({ password: "the-right-password" })
      const missing = yield* Effect.promise(() =>
        SessionStore.open({ server: redis.server }).then((store) => store.close(), (error: unknown) => error)
      )
      expect(missing).toMatchObject({ _tag: "RedisConnectionError", reason: "Authentication" })
      expect((missing as Error).message).toContain(
        "the server requires a password: set `password` (and `username` for an ACL user)"
      )
      const wrong = yield* Effect.flip(
        Effect.scoped(Layer.build(SessionStore.layer({ server: redis.server, password: "not-the-password" })))
      )
      expect(wrong).toMatchObject({ _tag: "RedisConnectionError", reason: "Authentication" })
      expect(wrong.message).toContain("rejected the username or password: check `password`")
      expect(wrong.message).not.toContain("not-the-password")
    }).pipe(Effect.scoped))
})

describe("misspelt environment variables (point 5)", () => {
  it.live("layerConfig warns once about each REDIS_SESSION_ variable that is no setting, naming the closest", () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.scoped()
      const build = Effect.scoped(Layer.build(SessionStore.layerConfig()))
      const env = {
        REDIS_SESSION_SERVER: redis.server,
        REDIS_SESSION_EXPIRES: "60",
        REDIS_SESSION_CACHE_CAPACTY: "5",
        REDIS_SESSION_FLAVOUR: "vanilla"
      }
      const first = yield* withEnv(env, warningsOf(build))
      expect(Exit.isSuccess(first.exit)).toBe(true)
      expect(first.lines).toEqual([
        "effect-session-redis: the environment variable REDIS_SESSION_CACHE_CAPACTY is not a setting and is ignored; did you mean REDIS_SESSION_CACHE_CAPACITY?",
        "effect-session-redis: the environment variable REDIS_SESSION_EXPIRES is not a setting and is ignored; did you mean REDIS_SESSION_EXPIRE?",
        "effect-session-redis: the environment variable REDIS_SESSION_FLAVOUR is not a setting and is ignored"
      ])
      // Once per process: a second layer says nothing more.
      const second = yield* withEnv(env, warningsOf(build))
      expect(Exit.isSuccess(second.exit)).toBe(true)
      expect(second.lines).toEqual([])
      // Settings given in code are not about the environment: no warning for them.
      const inCode = yield* withEnv(
        { REDIS_SESSION_DATABSE: "1" },
        warningsOf(Effect.scoped(Layer.build(SessionStore.layer({ server: redis.server }))))
      )
      expect(inCode.lines).toEqual([])
    }).pipe(Effect.scoped))

  it.effect("the middleware warns about each HTTP_SESSION_ variable that is no option", () =>
    Effect.gen(function*() {
      const { exit, lines } = yield* withEnv(
        { HTTP_SESSION_SECRETS: secret, HTTP_SESSION_SAMESITE: "strict", HTTP_SESSION_MAXAGE: "60" },
        warningsOf(Effect.flatMap(HttpSession.config, HttpSession.middleware))
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(lines).toEqual([
        "effect-session-redis: the environment variable HTTP_SESSION_MAXAGE is not an option and is ignored; did you mean HTTP_SESSION_MAX_AGE?",
        "effect-session-redis: the environment variable HTTP_SESSION_SAMESITE is not an option and is ignored; did you mean HTTP_SESSION_SAME_SITE?"
      ])
    }))
})
