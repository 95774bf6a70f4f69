/**
 * Values with no JSON form (a bigint, a cycle, a toJSON that throws) fail
 * `create` and `flush` with a typed `SessionEncodeError` on every backend,
 * write nothing, and never show the value.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SessionStore } from "../src/index.js"
import { isSessionError, SessionEncodeError } from "../src/SessionError.js"
import { change } from "./SessionStoreSpec.js"
import { RedisServer } from "./support/index.js"

const secret = "secret-4711"

/** Values JSON.stringify throws on, by name. Built fresh per use: a cycle must stay a cycle. */
const unencodable = (): ReadonlyArray<readonly [name: string, value: unknown]> => {
  const cycle: Record<string, unknown> = { note: secret }
  cycle.self = cycle
  return [
    ["bigint", 4711n],
    ["nested bigint", { deep: [1, { n: 4711n }], note: secret }],
    ["cycle", cycle],
    ["throwing toJSON", {
      toJSON: () => {
        throw new Error(`cannot encode ${secret}`)
      }
    }]
  ]
}

const expectEncodeError = (error: unknown, field: string, id: string | undefined) => {
  expect(error).toBeInstanceOf(SessionEncodeError)
  const encode = error as SessionEncodeError
  expect(encode._tag).toBe("SessionEncodeError")
  expect(encode.field).toBe(field)
  // Only the six characters debug lines show: the id is a bearer token.
  expect(encode.id).toBe(id === undefined ? undefined : `${id.slice(0, 6)}…`)
  for (const shown of [encode.message, String(encode), JSON.stringify(encode)]) {
    expect(shown).not.toContain(secret)
    expect(shown).not.toContain("4711")
    if (id !== undefined) expect(shown).not.toContain(id)
  }
}

const prefix = "encode:"

const backends = {
  memory: SessionStore.layerMemory(),
  redis: Layer.unwrapScoped(
    Effect.map(
      RedisServer.scoped(),
      (server) =>
        Layer.merge(Layer.succeed(RedisServer.TestRedis, server), SessionStore.layer(server.settings({ prefix })))
    )
  )
}

for (const [backend, storeLayer] of Object.entries(backends)) {
  layer(storeLayer, { excludeTestServices: true })(`SessionEncodeError (${backend})`, (it) => {
    /** The raw hashes under our prefix (Redis), or nothing to compare (memory: its map is private). */
    const stored = Effect.gen(function*() {
      const server = yield* Effect.serviceOption(RedisServer.TestRedis)
      if (Option.isNone(server)) return undefined
      const raw = server.value.client()
      const keys = (yield* Effect.promise(() => raw.keys(`${prefix}*`))).sort()
      return yield* Effect.forEach(keys, (key) => Effect.promise(() => raw.hgetall(key)))
    })

    describe("create", () => {
      it.effect("fails typed, names the field, shows no value, and writes nothing", () =>
        Effect.gen(function*() {
          const store = yield* SessionStore.SessionStore
          const before = yield* stored
          for (const [name, value] of unencodable()) {
            const error = yield* Effect.flip(store.create({ ok: 1, bad: value }))
            expectEncodeError(error, "bad", undefined)
            expect(yield* stored, name).toEqual(before)
          }
        }))
    })

    describe("flush", () => {
      it.effect("fails typed, names the field and the session, shows no value, and writes nothing", () =>
        Effect.gen(function*() {
          const store = yield* SessionStore.SessionStore
          const created = yield* store.create({ ok: 1 })
          const before = yield* stored
          for (const [name, value] of unencodable()) {
            // Alongside a good change, which is not written either: a flush is all or nothing.
            const error = yield* Effect.flip(store.flush(change(created, { ok: 2, bad: value })))
            expectEncodeError(error, "bad", created.id)
            expect(yield* stored, name).toEqual(before)
            expect(Option.getOrThrow(yield* store.retrieve(created.id)).data, name).toEqual({ ok: 1 })
          }
          // A session written whole (built by hand) fails the same way.
          const error = yield* Effect.flip(store.flush({ id: created.id, data: { bad: 1n } }))
          expectEncodeError(error, "bad", created.id)
          expect(Option.getOrThrow(yield* store.retrieve(created.id)).data).toEqual({ ok: 1 })
          // The store keeps working.
          yield* store.flush(change(created, { ok: 3 }))
          expect(Option.getOrThrow(yield* store.retrieve(created.id)).data).toEqual({ ok: 3 })
        }))
    })
  })
}

describe("SessionEncodeError", () => {
  it("is one of the store's errors, with a message that names the field", () => {
    const error = new SessionEncodeError({ field: "f", detail: "a bigint has no JSON form" })
    expect(error.message).toBe("Session field \"f\" could not be encoded: a bigint has no JSON form")
    expect(isSessionError(error)).toBe(true)
  })
})
