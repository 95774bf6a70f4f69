/**
 * Secrets never reach any printed form of an error: not the message, not the
 * stack, not the cause chain, not JSON, not util.inspect. Each case uses a
 * unique password and looks for it everywhere an error can be printed, and
 * in every value reachable from the error object.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { randomBytes } from "node:crypto"
import * as util from "node:util"
import { type SessionConfig, SessionStore } from "../src/index.js"
import { RedisServer } from "./support/index.js"

const unique = (what: string) => `${what}-${randomBytes(6).toString("hex")}`

const build = (settings: SessionConfig.Input) =>
  Effect.map(Layer.build(SessionStore.layer(settings)), Context.get(SessionStore.SessionStore))

/** Every string reachable from `root` (own properties, Buffers, Maps, Sets, the cause chain), bounded. */
const reachableStrings = (root: unknown): Array<string> => {
  const out: Array<string> = []
  const seen = new Set<unknown>()
  const visit = (value: unknown): void => {
    if (typeof value === "string") return void out.push(value)
    if (typeof value !== "object" || value === null || seen.has(value) || seen.size > 20_000) return
    seen.add(value)
    if (Buffer.isBuffer(value)) return void out.push(value.toString("latin1"))
    if (value instanceof Map) return value.forEach((v, k) => (visit(k), visit(v)))
    if (value instanceof Set) return value.forEach(visit)
    for (const key of Reflect.ownKeys(value)) {
      const descriptor = Object.getOwnPropertyDescriptor(value, key)
      if (descriptor !== undefined && "value" in descriptor) visit(descriptor.value)
    }
    if (value instanceof Error) {
      visit(value.message)
      visit(value.stack)
      visit(value.cause)
    }
  }
  visit(root)
  return out
}

/** Every way an error is commonly printed, down its cause chain. */
const printedForms = (error: unknown): Array<string> => {
  const forms: Array<string> = []
  const seen = new Set<unknown>()
  for (
    let current: unknown = error;
    typeof current === "object" && current !== null;
    current = (current as { cause?: unknown }).cause
  ) {
    if (seen.has(current)) break
    seen.add(current)
    forms.push(
      String(current),
      util.inspect(current, { depth: null, showHidden: true }),
      util.format("%o", current),
      JSON.stringify(current) ?? "",
      Cause.pretty(Cause.fail(current)),
      current instanceof Error ? current.stack ?? "" : ""
    )
  }
  return forms
}

const expectNoSecret = (error: unknown, secrets: ReadonlyArray<string>) => {
  const everything = [...printedForms(error), ...reachableStrings(error)]
  for (const secret of secrets) {
    const leaks = everything.filter((text) => text.includes(secret))
    expect(leaks, `the secret appears in ${leaks.length} printed forms`).toEqual([])
  }
}

describe("secrets never reach a printed error", () => {
  it.scopedLive("wrong password: the layer fails with Authentication, and the password is nowhere", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped({ password: unique("server-pw") })
      const password = unique("wrong-pw")
      const error = yield* Effect.flip(build({ server: server.server, password, connectTimeout: 2000 }))
      expect(error._tag).toBe("RedisConnectionError")
      expect(error._tag === "RedisConnectionError" && error.reason).toBe("Authentication")
      expectNoSecret(error, [password])
    }).pipe(RedisServer.hangGuard(20_000, "wrong password")))

  it.scopedLive("wrong password with a username (ACL): nowhere either", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped({ password: unique("server-pw") })
      const password = unique("wrong-pw")
      const username = unique("user")
      const error = yield* Effect.flip(build({ server: server.server, username, password, connectTimeout: 2000 }))
      expect(error._tag === "RedisConnectionError" && error.reason).toBe("Authentication")
      expectNoSecret(error, [password])
    }).pipe(RedisServer.hangGuard(20_000, "wrong password with username")))

  it.scopedLive("wrong password inside a url: nowhere", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped({ password: unique("server-pw") })
      const password = unique("url-pw")
      const url = `redis://${unique("user")}:${password}@127.0.0.1:${server.port}`
      const error = yield* Effect.flip(build({ url, connectTimeout: 2000 }))
      expect(error._tag === "RedisConnectionError" && error.reason).toBe("Authentication")
      expectNoSecret(error, [password])
    }).pipe(RedisServer.hangGuard(20_000, "wrong password in url")))

  it.scopedLive("connection refused, password in a url and in the settings: nowhere", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const port = server.port
      yield* Effect.promise(() => server.kill())
      const password = unique("refused-pw")
      const viaUrl = yield* Effect.flip(build({ url: `redis://u:${password}@127.0.0.1:${port}`, connectTimeout: 2000 }))
      expect(viaUrl._tag === "RedisConnectionError" && viaUrl.reason).toBe("Refused")
      expectNoSecret(viaUrl, [password])
      const viaSettings = yield* Effect.flip(build({ server: `127.0.0.1:${port}`, password, connectTimeout: 2000 }))
      expect(viaSettings._tag === "RedisConnectionError" && viaSettings.reason).toBe("Refused")
      expectNoSecret(viaSettings, [password])
    }).pipe(RedisServer.hangGuard(20_000, "connection refused")))

  it.scopedLive("connect timeout against a hung server, password in a url: nowhere", () =>
    Effect.gen(function*() {
      const password = unique("hung-pw")
      const server = yield* RedisServer.scoped({ password })
      server.freeze()
      const error = yield* Effect.flip(
        build({ url: `redis://:${password}@127.0.0.1:${server.port}`, connectTimeout: 500, commandTimeout: 500 })
      ).pipe(Effect.ensuring(Effect.sync(() => server.thaw())))
      expect(error._tag === "RedisConnectionError" && error.reason).toBe("Timeout")
      expectNoSecret(error, [password])
    }).pipe(RedisServer.hangGuard(20_000, "connect timeout")))

  it.scopedLive("password changed on the server, then reconnect (WRONGPASS, NOAUTH) and a command timeout: nowhere", () =>
    Effect.gen(function*() {
      const password = unique("old-pw")
      const server = yield* RedisServer.scoped({ password })
      const store = yield* build({
        url: `redis://:${password}@127.0.0.1:${server.port}`,
        connectTimeout: 1000,
        commandTimeout: 500,
        cache: { enabled: false }
      })
      const created = yield* store.create({ a: 1 })
      const raw = server.client()
      // A frozen server: the command times out while the connection is still open.
      server.freeze()
      const timeout = yield* Effect.flip(store.retrieve(created.id)).pipe(
        Effect.ensuring(Effect.sync(() => server.thaw()))
      )
      expect(timeout._tag === "RedisConnectionError" && timeout.reason).toBe("Timeout")
      expectNoSecret(timeout, [password])
      yield* RedisServer.eventually(store.retrieve(created.id), { timeoutMs: 20_000, intervalMs: 25 })
      // Now the password changes and our connections are dropped: every reconnect is refused.
      yield* Effect.promise(() => raw.config("SET", "requirepass", unique("new-pw")))
      yield* Effect.promise(() => raw.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
      const errors = yield* RedisServer.eventually(
        Effect.flatMap(
          Effect.flip(store.retrieve(created.id)),
          (error) =>
            error._tag === "RedisConnectionError" && error.reason === "Authentication"
              ? Effect.succeed(error)
              : Effect.fail(error)
        ),
        { timeoutMs: 20_000, intervalMs: 10 }
      )
      expectNoSecret(errors, [password])
    }).pipe(RedisServer.hangGuard(40_000, "password change")))
})

describe("secrets never reach a config error", () => {
  it.effect("a rejected url does not echo its credentials", () =>
    Effect.gen(function*() {
      const password = unique("url-pw")
      const username = unique("url-user")
      for (const url of [`redis://${username}:${password}@host:99999`, `http://${username}:${password}@host:6379`]) {
        const error = yield* Effect.flip(Layer.build(SessionStore.layer({ url })))
        expect(error._tag).toBe("SessionConfigError")
        expect(error._tag === "SessionConfigError" && error.field).toBe("url")
        expectNoSecret(error, [password, username])
      }
    }).pipe(Effect.scoped))

  it.effect("a password of the wrong type is not echoed", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(SessionStore.layer({ server: "127.0.0.1:1", password: 4815162342 as unknown as string }))
      )
      expect(error._tag === "SessionConfigError" && error.field).toBe("password")
      expectNoSecret(error, ["4815162342"])
    }).pipe(Effect.scoped))

  it.effect("a server setting holding credentials is not echoed", () =>
    Effect.gen(function*() {
      const password = unique("server-pw")
      const error = yield* Effect.flip(Layer.build(SessionStore.layer({ server: `user:${password}@host:6379` })))
      expect(error._tag === "SessionConfigError" && error.field).toBe("server")
      expectNoSecret(error, [password])
    }).pipe(Effect.scoped))

  // A private key pasted without its "-----BEGIN" line reads as a file path, which could not be
  // read; the error must not quote it (issue 19, point 5).
  it.effect("a tls.key that is neither PEM text nor a readable file is not echoed", () =>
    Effect.gen(function*() {
      const key = `MIIEvQIBADANBgkqhkiG9w0BAQEFAASC${unique("key")}`
      for (const given of [key, `${key}\n${key}\n-----END PRIVATE KEY-----\n`]) {
        const error = yield* Effect.flip(
          Layer.build(SessionStore.layer({ server: "127.0.0.1:1", tls: { key: given } }))
        )
        expect(error._tag === "SessionConfigError" && error.field).toBe("tls.key")
        expectNoSecret(error, [key, key.slice(0, 24)])
      }
    }).pipe(Effect.scoped))

  it.effect("from the environment: REDIS_SESSION_URL is named, its credentials are not printed", () =>
    Effect.gen(function*() {
      const password = unique("env-pw")
      const error = yield* Effect.flip(Layer.build(SessionStore.layerConfig())).pipe(
        Effect.withConfigProvider(
          ConfigProvider.fromMap(new Map([["REDIS_SESSION_URL", `redis://u:${password}@host:99999`]]), {
            pathDelim: "_"
          })
        )
      )
      expect(String(error)).toContain("URL")
      expectNoSecret(error, [password])
    }).pipe(Effect.scoped))
})

// A session id is a bearer token: errors about a session show only the six characters that debug
// lines show (issue 19, point 4).
describe("session ids never reach a printed error whole", () => {
  const expectPrefixOnly = (error: unknown, id: string) => {
    expectNoSecret(error, [id, id.slice(0, 12)])
    expect(util.inspect(error)).toContain(`${id.slice(0, 6)}…`)
  }

  it.scopedLive("SessionDecodeError: a stored field that is not JSON", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* build(server.settings({ cache: { enabled: false } }))
      const created = yield* store.create({ ok: 1 })
      yield* Effect.promise(() => server.client().hset(`session:${created.id}`, "broken", "not json{"))
      const error = yield* Effect.flip(store.retrieve(created.id))
      expect(error._tag).toBe("SessionDecodeError")
      expect(error._tag === "SessionDecodeError" && error.id).toBe(`${created.id.slice(0, 6)}…`)
      expectPrefixOnly(error, created.id)
    }))

  it.effect("SessionEncodeError: a value with no JSON form", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore.makeMemory()
      const created = yield* store.create({ ok: 1 })
      const error = yield* Effect.flip(store.flush({ ...created, data: { bad: 1n } }))
      expect(error._tag).toBe("SessionEncodeError")
      expect(error._tag === "SessionEncodeError" && error.id).toBe(`${created.id.slice(0, 6)}…`)
      expectPrefixOnly(error, created.id)
    }))

  it("built by hand, the errors keep only the prefix too", async () => {
    const { SessionDecodeError, SessionEncodeError } = await import("../src/SessionError.js")
    const id = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde"
    expectPrefixOnly(new SessionDecodeError({ id, field: "f", cause: "not valid JSON" }), id)
    expectPrefixOnly(new SessionEncodeError({ id, field: "f", detail: "a bigint has no JSON form" }), id)
  })
})
