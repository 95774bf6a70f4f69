/**
 * Model-based test: random sequences of create (bound to a user or not) /
 * retrieve / flush (from a fresh or stale copy, rebinding or not) / destroy /
 * touch / sessionsOf / destroyAll run against every backend, which must agree
 * with a plain Map model with field-merge, no-resurrection and
 * binding-follows-the-session semantics.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import fc from "fast-check"
import type { Session } from "../src/index.js"
import { SessionStore } from "../src/index.js"
import { RedisServer } from "./support/index.js"

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [k: string]: Json }
type Data = Record<string, Json>

type Op =
  | { readonly _tag: "create"; readonly data: Data; readonly user: string | undefined }
  | { readonly _tag: "retrieve"; readonly ref: number }
  | {
    readonly _tag: "flush"
    readonly ref: number
    /** Which of the copies read so far (0 = the oldest); "latest" picks the newest. */
    readonly copy: number | "latest"
    /** Set a key, or remove it (by leaving it out, or by setting it to undefined). */
    readonly changes: ReadonlyArray<readonly [key: string, value: Json | "remove" | "undefined"]>
    /** Left out: the copy's own user is kept; null unbinds; a string binds. */
    readonly rebind?: string | null | undefined
  }
  | { readonly _tag: "sessionsOf"; readonly user: string }
  | { readonly _tag: "destroyAll"; readonly user: string; readonly except: number | undefined }
  | { readonly _tag: "destroy"; readonly ref: number }
  | { readonly _tag: "touch"; readonly ref: number }

// Few keys, so that copies often touch the same and different fields; "$" keys exercise the escaping.
const keyArb = fc.constantFrom("a", "b", "c", "n", "$c", "$", "$$x")
const valueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ min: -100, max: 100 }),
  fc.string({ maxLength: 4 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }),
  fc.record({ x: fc.integer({ min: 0, max: 3 }) })
)
const dataArb: fc.Arbitrary<Data> = fc.dictionary(keyArb, valueArb, { maxKeys: 3 })
const refArb = fc.nat({ max: 7 })
const userArb = fc.constantFrom("u0", "u1", "u2")

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      _tag: fc.constant("create" as const),
      data: dataArb,
      user: fc.option(userArb, { nil: undefined })
    })
  },
  { weight: 1, arbitrary: userArb.map((user) => ({ _tag: "sessionsOf", user }) as const) },
  {
    weight: 1,
    arbitrary: fc.record({
      _tag: fc.constant("destroyAll" as const),
      user: userArb,
      except: fc.option(refArb, { nil: undefined })
    })
  },
  { weight: 3, arbitrary: refArb.map((ref) => ({ _tag: "retrieve", ref }) as const) },
  {
    weight: 4,
    arbitrary: fc.record({
      _tag: fc.constant("flush" as const),
      ref: refArb,
      copy: fc.oneof(fc.constant("latest" as const), fc.nat({ max: 5 })),
      changes: fc.array(
        fc.tuple(keyArb, fc.oneof(valueArb, fc.constant("remove" as const), fc.constant("undefined" as const))),
        { minLength: 0, maxLength: 3 }
      ),
      rebind: fc.option(fc.option(userArb, { nil: null }), { nil: undefined, freq: 2 })
    }, { requiredKeys: ["_tag", "ref", "copy", "changes"] })
  },
  { weight: 1, arbitrary: refArb.map((ref) => ({ _tag: "destroy", ref }) as const) },
  { weight: 1, arbitrary: refArb.map((ref) => ({ _tag: "touch", ref }) as const) }
)

const encode = (value: unknown) => JSON.stringify(value)
const normalize = (data: Data): Data => JSON.parse(JSON.stringify(data)) as Data

/** Applies a flush's changes to what a copy holds, the way a caller edits a session. */
const edit = (data: Readonly<Record<string, unknown>>, changes: Extract<Op, { _tag: "flush" }>["changes"]) => {
  const next: Record<string, unknown> = { ...data }
  for (const [key, value] of changes) {
    if (value === "remove") delete next[key]
    else if (value === "undefined") next[key] = undefined
    else next[key] = value
  }
  return next
}

/**
 * The model of one session: its current data (undefined once gone), its user, and the copies read
 * of it (with the user each was read with).
 */
interface ModelSession {
  data: Data | undefined
  user: string | undefined
  readonly copies: Array<Data>
  readonly users: Array<string | undefined>
}

/**
 * The store's contract: a flush writes the fields whose JSON differs from the
 * copy it was read from, removes the fields the copy had and the caller left
 * out, and never brings back a session that is gone.
 */
const modelFlush = (session: ModelSession, base: Data, edited: Readonly<Record<string, unknown>>) => {
  if (session.data === undefined) return
  const next: Data = { ...session.data }
  for (const [key, value] of Object.entries(edited)) {
    if (value === undefined) continue
    if (encode(value) !== encode(base[key])) next[key] = JSON.parse(encode(value)) as Json
  }
  for (const key of Object.keys(base)) {
    if (edited[key] === undefined) delete next[key]
  }
  session.data = next
}

interface Backend {
  readonly name: string
  readonly store: SessionStore.SessionStore
  /** The sessions this backend returned, per model session, in the same order as the model's copies. */
  readonly copies: Array<Array<Session.Session>>
}

const describeOp = (op: Op) => JSON.stringify(op)

/**
 * `observer` is a second cached instance on the same keys as `backends[observed]`: it only reads, so
 * its cache holds entries that the other instance's writes must invalidate. Invalidations arrive
 * asynchronously, so it is checked only at the end, polling until it agrees.
 */
const run = (
  ops: ReadonlyArray<Op>,
  backends: ReadonlyArray<Backend>,
  observer?: { readonly store: SessionStore.SessionStore; readonly observed: number }
) =>
  Effect.gen(function*() {
    const model: Array<ModelSession> = []
    const expectSame = (
      what: string,
      name: string,
      actual: Option.Option<Session.Session>,
      expected: Data | undefined
    ) => {
      expect(Option.isSome(actual) ? actual.value.data : undefined, `${name}: ${what}`).toEqual(expected)
    }
    for (const [step, op] of ops.entries()) {
      const at = `step ${step} ${describeOp(op)}`
      if (op._tag === "create") {
        model.push({ data: normalize(op.data), user: op.user, copies: [normalize(op.data)], users: [op.user] })
        for (const backend of backends) {
          const created = yield* backend.store.create(op.data, { user: op.user })
          expectSame(at, backend.name, Option.some(created), normalize(op.data))
          expect(created.user, `${backend.name}: ${at}`).toBe(op.user)
          backend.copies.push([created])
        }
        continue
      }
      if (op._tag === "sessionsOf") {
        const expected = model.flatMap((m, i) => m.data !== undefined && m.user === op.user ? [i] : [])
        for (const backend of backends) {
          const listed = yield* backend.store.sessionsOf(op.user)
          const indexes = listed.map((info) => backend.copies.findIndex((copies) => copies[0]!.id === info.id))
          expect(indexes.sort((a, b) => a - b), `${backend.name}: ${at}`).toEqual(expected)
        }
        continue
      }
      if (op._tag === "destroyAll") {
        const except = op.except === undefined || model.length === 0 ? undefined : op.except % model.length
        const doomed = model.flatMap((m, i) => m.data !== undefined && m.user === op.user && i !== except ? [i] : [])
        for (const backend of backends) {
          const count = yield* backend.store.destroyAll(op.user, {
            except: except === undefined ? undefined : backend.copies[except]![0]!.id
          })
          expect(count, `${backend.name}: ${at}`).toBe(doomed.length)
        }
        for (const i of doomed) model[i]!.data = undefined
        continue
      }
      if (model.length === 0) continue
      const index = op.ref % model.length
      const session = model[index]!
      const id = (backend: Backend) => backend.copies[index]![0]!.id
      switch (op._tag) {
        case "retrieve": {
          if (observer !== undefined) yield* observer.store.retrieve(id(backends[observer.observed]!))
          for (const backend of backends) {
            const found = yield* backend.store.retrieve(id(backend))
            expectSame(at, backend.name, found, session.data)
            if (Option.isSome(found)) {
              expect(found.value.user, `${backend.name}: ${at}: user`).toBe(session.user)
              backend.copies[index]!.push(found.value)
            }
          }
          if (session.data !== undefined) {
            session.copies.push(session.data)
            session.users.push(session.user)
          }
          break
        }
        case "flush": {
          const pick = op.copy === "latest" ? session.copies.length - 1 : op.copy % session.copies.length
          const base = session.copies[pick]!
          const rebind = op.rebind === undefined ? {} : { user: op.rebind ?? undefined }
          for (const backend of backends) {
            const copy = backend.copies[index]![pick]!
            yield* backend.store.flush({ ...copy, data: edit(copy.data, op.changes), ...rebind })
          }
          // The binding changes when the flush asks for another user than its copy was read with.
          const requested = op.rebind === undefined ? session.users[pick] : op.rebind ?? undefined
          if (session.data !== undefined && requested !== session.users[pick]) session.user = requested
          modelFlush(session, base, edit(base, op.changes))
          break
        }
        case "destroy": {
          for (const backend of backends) yield* backend.store.destroy(id(backend))
          session.data = undefined
          break
        }
        case "touch": {
          for (const backend of backends) yield* backend.store.touch(id(backend))
          break
        }
      }
    }
    for (const [index, session] of model.entries()) {
      for (const backend of backends) {
        const found = yield* backend.store.retrieve(backend.copies[index]![0]!.id)
        expectSame(`final state of session ${index}`, backend.name, found, session.data)
        if (Option.isSome(found)) expect(found.value.user, `${backend.name}: final user of ${index}`).toBe(session.user)
      }
      if (observer !== undefined) {
        const id = backends[observer.observed]!.copies[index]![0]!.id
        const agrees = Effect.flatMap(observer.store.retrieve(id), (found) => {
          const data = Option.isSome(found) ? found.value.data : undefined
          return encode(data) === encode(session.data) ? Effect.void : Effect.fail(data)
        })
        const last = yield* Effect.either(RedisServer.eventually(agrees, { timeoutMs: 5_000, intervalMs: 5 }))
        if (last._tag === "Left") {
          expect(last.left, `other cached instance: final state of session ${index}`).toEqual(session.data)
        }
      }
    }
  })

describe("SessionStore model test (memory; redis cached, uncached, untracked; a second cached instance)", () => {
  let server: RedisServer.RedisServer
  beforeAll(async () => {
    server = await RedisServer.start()
  })
  afterAll(async () => {
    await server.stop()
  })

  let runNumber = 0
  const redisStore = (name: string, cache: { enabled?: boolean; tracking?: boolean }) =>
    Effect.map(
      Layer.build(SessionStore.layer(server.settings({ prefix: `model${runNumber}${name}:`, cache }))),
      Context.get(SessionStore.SessionStore)
    )

  it("every backend agrees with the model", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) =>
        Effect.runPromise(
          Effect.scoped(
            Effect.gen(function*() {
              runNumber++
              const backends: Array<Backend> = [
                { name: "memory", store: yield* SessionStore.makeMemory(), copies: [] },
                { name: "redis cached", store: yield* redisStore("c", {}), copies: [] },
                { name: "redis uncached", store: yield* redisStore("u", { enabled: false }), copies: [] },
                {
                  name: "redis cached without tracking",
                  store: yield* redisStore("s", { tracking: false }),
                  copies: []
                }
              ]
              yield* run(ops, backends, { store: yield* redisStore("c", {}), observed: 1 })
            })
          )
        )),
      { numRuns: 60 }
    )
  })
})
