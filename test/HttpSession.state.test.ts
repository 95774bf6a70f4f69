/**
 * The per-request state machine over HTTP: concurrent fibers of one request,
 * a destroy racing a load, regenerate and destroy together, and error
 * responses after each kind of change. The store is the in-memory backend
 * wrapped to count and pause calls; HttpSession.test.ts runs the common
 * behaviour on Redis too.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as HttpSession from "../src/HttpSession.js"
import * as SessionStore from "../src/SessionStore.js"
import * as Http from "./support/http.js"

const secret = "secret-for-state-tests-0123456789abcdef"

class Teapot extends Schema.TaggedError<Teapot>()("Teapot", {}) {}

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

/** A memory store that counts calls and can hold `retrieve` until a test lets it go. */
const makeStore = Effect.gen(function*() {
  const inner = yield* SessionStore.makeMemory()
  const calls = yield* Ref.make({ retrieve: 0, create: 0, flush: 0, destroy: 0 })
  const entered = yield* Deferred.make<void>()
  const gate = yield* Ref.make<Deferred.Deferred<void> | undefined>(undefined)
  const count = (op: "retrieve" | "create" | "flush" | "destroy") =>
    Ref.update(calls, (c) => ({ ...c, [op]: c[op] + 1 }))
  const store: SessionStore.SessionStore = {
    ...inner,
    retrieve: (id) =>
      Effect.gen(function*() {
        yield* count("retrieve")
        const held = yield* Ref.get(gate)
        if (held !== undefined) {
          yield* Deferred.succeed(entered, undefined)
          yield* Deferred.await(held)
        }
        return yield* inner.retrieve(id)
      }),
    create: (data) => Effect.zipRight(count("create"), inner.create(data)),
    flush: (s) => Effect.zipRight(count("flush"), inner.flush(s)),
    destroy: (id) => Effect.zipRight(count("destroy"), inner.destroy(id))
  }
  return { store, inner, calls: Ref.getAndSet(calls, { retrieve: 0, create: 0, flush: 0, destroy: 0 }), entered, gate }
})

const setup = Effect.gen(function*() {
  const t = yield* makeStore
  const session = HttpSession.HttpSession
  const router = HttpRouter.empty.pipe(
    HttpRouter.post("/seed", Effect.as(Effect.flatMap(session, (s) => s.set("a", 1)), json({ ok: true }))),
    HttpRouter.get("/data", Effect.map(Effect.flatMap(session, (s) => s.data), (data) => json(data))),
    // First access from four fibers at once.
    HttpRouter.post(
      "/concurrent",
      Effect.gen(function*() {
        const s = yield* session
        const [a, , , isNew] = yield* Effect.all([s.get("a"), s.set("b", 2), s.data, s.isNew], {
          concurrency: "unbounded"
        })
        return json({ a: Option.getOrNull(a), isNew })
      })
    ),
    // Two fibers ask the id of a new session at once: one session must be made.
    HttpRouter.post(
      "/ids",
      Effect.gen(function*() {
        const s = yield* session
        yield* s.set("x", 1)
        const [one, two] = yield* Effect.all([s.id, s.id], { concurrency: "unbounded" })
        return json({ same: one === two })
      })
    ),
    // A destroy while another fiber's load is in flight: the destroy wins.
    HttpRouter.post(
      "/destroy-during-load",
      Effect.gen(function*() {
        const s = yield* session
        const gate = yield* Deferred.make<void>()
        yield* Ref.set(t.gate, gate)
        const reader = yield* Effect.fork(s.get("a"))
        yield* Deferred.await(t.entered)
        yield* s.destroy
        yield* Ref.set(t.gate, undefined)
        yield* Deferred.succeed(gate, undefined)
        const read = yield* Fiber.join(reader)
        return json({ read: Option.getOrNull(read), after: yield* s.data })
      })
    ),
    HttpRouter.post(
      "/regenerate-then-destroy",
      Effect.gen(function*() {
        const s = yield* session
        yield* s.regenerate
        yield* s.destroy
        return json({ ok: true })
      })
    ),
    // `n` sets (and an unset, a get and a read of a value per set) in one request, counting the keys
    // of every object frozen meanwhile: a full copy of the data per set freezes O(n²) keys.
    HttpRouter.post(
      "/many",
      Effect.gen(function*() {
        const s = yield* session
        const n = Number(Option.getOrThrow(yield* s.get("n")))
        const freeze = Object.freeze
        let frozenKeys = 0
        const counting = <A>(o: A): Readonly<A> => {
          if (typeof o === "object" && o !== null) frozenKeys += Object.keys(o).length
          return freeze(o)
        }
        yield* Effect.acquireUseRelease(
          Effect.sync(() => (Object.freeze = counting)),
          () =>
            Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) =>
              Effect.gen(function*() {
                yield* s.set(`k${i}`, { i })
                yield* s.set(`gone${i}`, i)
                yield* s.unset(`gone${i}`)
                const back = yield* s.get(`k${i}`)
                if (Option.getOrNull(back) === null) return yield* Effect.dieMessage(`k${i} not read back`)
              }), { discard: true }),
          () => Effect.sync(() => (Object.freeze = freeze))
        )
        return json({ n, frozenKeys })
      })
    ),
    HttpRouter.post(
      "/seed-many",
      Effect.gen(function*() {
        const s = yield* session
        for (let i = 0; i < 1000; i++) yield* s.set(`old${i}`, i)
        yield* s.set("n", 2000)
        return json({ ok: true })
      })
    ),
    // The id of a regenerated session is asked after the stored one was destroyed elsewhere: the move
    // finds it gone, so this request's session ends, and the id is a new, empty session's.
    HttpRouter.post(
      "/regenerate-revoked-then-id",
      Effect.gen(function*() {
        const s = yield* session
        const before = Option.getOrNull(yield* s.get("a"))
        yield* s.regenerate
        const request = yield* HttpServerRequest.HttpServerRequest
        yield* t.inner.destroy(new URL(request.url, "http://x").searchParams.get("victim")!)
        const id = yield* s.id
        return json({ before, id, data: yield* s.data })
      })
    ),
    HttpRouter.post("/set-then-fail", Effect.zipRight(Effect.flatMap(session, (s) => s.set("c", 3)), new Teapot())),
    HttpRouter.post("/destroy-then-fail", Effect.zipRight(Effect.flatMap(session, (s) => s.destroy), new Teapot())),
    HttpRouter.post(
      "/regenerate-then-fail",
      Effect.zipRight(Effect.flatMap(session, (s) => s.regenerate), new Teapot())
    )
  )
  const middleware = yield* HttpSession.middleware({ secrets: [secret] })
  const app = middleware(router).pipe(
    Effect.catchTag("Teapot", () => Effect.succeed(json({ error: "Teapot" }, 418))),
    Effect.provideService(SessionStore.SessionStore, t.store)
  )
  const url = yield* Http.serve(app)
  const client = Http.makeClient(url)
  const idOf = () => client.jar.get("sid")!.split(".")[0]!
  const exists = (id: string) => Effect.map(Effect.orDie(t.inner.retrieve(id)), Option.isSome)
  return { ...t, client, idOf, exists }
})

describe("HttpSession state machine over HTTP", () => {
  it.scopedLive("concurrent fibers of one request share one loaded session, and its changes are saved", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.client.post("/seed")
      const id = t.idOf()
      yield* t.calls
      const reply = yield* t.client.post("/concurrent")
      expect(reply.body).toEqual({ a: 1, isNew: false })
      // The session is not replaced: the same id (its cookie comes back as it was, with a fresh
      // Max-Age, since the write refreshed its lifetime), both fields stored, one flush.
      expect(reply.setCookies.map((c) => c.value.split(".")[0])).toEqual([id])
      expect((yield* t.client.get("/data")).body).toEqual({ a: 1, b: 2 })
      const calls = yield* t.calls
      expect(calls).toMatchObject({ create: 0, destroy: 0 })
      expect(t.idOf()).toBe(id)
    }))

  it.scopedLive("two fibers asking the id of a new session make one session", () =>
    Effect.gen(function*() {
      const t = yield* setup
      const reply = yield* t.client.post("/ids")
      expect(reply.body).toEqual({ same: true })
      expect((yield* t.calls).create).toBe(1)
      expect(reply.setCookies).toHaveLength(1)
      expect((yield* t.client.get("/data")).body).toEqual({ x: 1 })
    }))

  it.scopedLive("a destroy while another fiber's load is in flight wins: the load's answer is dropped", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.client.post("/seed")
      const id = t.idOf()
      const reply = yield* t.client.post("/destroy-during-load")
      expect(reply.body).toEqual({ read: null, after: {} })
      expect(yield* t.exists(id)).toBe(false)
      expect(reply.setCookies).toHaveLength(1)
      expect(t.client.jar.has("sid")).toBe(false)
    }))

  it.scopedLive("regenerate then destroy: both the old and the would-be new session are gone", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.client.post("/seed")
      const id = t.idOf()
      yield* t.calls
      const reply = yield* t.client.post("/regenerate-then-destroy")
      expect(reply.status).toBe(200)
      expect(yield* t.exists(id)).toBe(false)
      expect((yield* t.calls).create).toBe(0)
      expect(t.client.jar.has("sid")).toBe(false)
    }))

  it.scopedLive("error responses: a set is saved, a destroy expires the cookie, a regenerate moves the session", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.client.post("/seed")
      const first = t.idOf()

      const set = yield* t.client.post("/set-then-fail")
      expect(set.status).toBe(418)
      expect((yield* t.client.get("/data")).body).toEqual({ a: 1, c: 3 })

      const regenerated = yield* t.client.post("/regenerate-then-fail")
      expect(regenerated.status).toBe(418)
      expect(regenerated.setCookies).toHaveLength(1)
      expect(t.idOf()).not.toBe(first)
      expect(yield* t.exists(first)).toBe(false)
      expect((yield* t.client.get("/data")).body).toEqual({ a: 1, c: 3 })

      const second = t.idOf()
      const destroyed = yield* t.client.post("/destroy-then-fail")
      expect(destroyed.status).toBe(418)
      expect(yield* t.exists(second)).toBe(false)
      expect(t.client.jar.has("sid")).toBe(false)
    }))

  it.scopedLive("a request that only reads a cached session writes nothing and signs nothing", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.client.post("/seed")
      yield* t.calls
      const reply = yield* t.client.get("/data")
      expect(reply.body).toEqual({ a: 1 })
      expect(reply.setCookies).toEqual([])
      expect(yield* t.calls).toEqual({ retrieve: 1, create: 0, flush: 0, destroy: 0 })
    }))

  // Each set used to copy the whole session (1k fields 0.23 s, 10k 14 s of blocked event loop): a
  // request's changes must cost O(changes) (issue 19, point 7).
  it.scopedLive("many sets in one request cost what they change, not a copy of the session each", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.client.post("/seed-many")
      const reply = yield* t.client.post("/many")
      const { frozenKeys, n } = reply.body as { n: number; frozenKeys: number }
      expect(n).toBe(2000)
      // Each set freezes its value (one key); a copy per set would freeze over 3 million keys here.
      expect(frozenKeys).toBeLessThan(10 * n)
      const data = (yield* t.client.get("/data")).body as Record<string, unknown>
      expect(Object.keys(data).length).toBe(1000 + 1 + n)
      expect(data["k1999"]).toEqual({ i: 1999 })
      expect(data["gone5"]).toBeUndefined()
      expect(data["old999"]).toBe(999)
    }))

  it.scopedLive("the id of a regenerated session whose stored one was destroyed meanwhile: a new, empty session", () =>
    Effect.gen(function*() {
      const t = yield* setup
      yield* t.client.post("/seed")
      const old = t.idOf()
      const reply = yield* t.client.request(`/regenerate-revoked-then-id?victim=${old}`, { method: "POST" })
      const { before, data, id } = reply.body as { before: number; id: string; data: unknown }
      expect(before).toBe(1)
      // The data did not move to a new id: the session it came from was gone.
      expect(data).toEqual({})
      expect(id).not.toBe(old)
      expect(t.idOf()).toBe(id)
      expect(yield* t.exists(old)).toBe(false)
      expect((yield* t.client.get("/data")).body).toEqual({})
    }))
})
