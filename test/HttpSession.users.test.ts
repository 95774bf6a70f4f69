/**
 * HttpSession's user operations: login binds under a new id, the user is
 * read back, the user's sessions are listed with the current one marked, and
 * signing out everywhere (else) revokes the others, on both backends.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { HttpSession, SessionStore } from "../src/index.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

const secret = "users-test-secret-0123456789abcdefghijkl"

const router = HttpRouter.empty.pipe(
  HttpRouter.post(
    "/login/:name",
    Effect.gen(function*() {
      const params = yield* HttpRouter.params
      const session = yield* HttpSession.HttpSession
      yield* session.set("seen", true)
      yield* session.login(params["name"]!)
      return HttpServerResponse.unsafeJson({ user: Option.getOrNull(yield* session.user) })
    })
  ),
  HttpRouter.get(
    "/me",
    Effect.gen(function*() {
      const session = yield* HttpSession.HttpSession
      const sessions = yield* session.sessions
      return HttpServerResponse.unsafeJson({
        user: Option.getOrNull(yield* session.user),
        sessions: sessions.map((s) => ({ current: s.current, createdAt: s.createdAt })),
        data: yield* session.data
      })
    })
  ),
  HttpRouter.post(
    "/out-others",
    Effect.flatMap(HttpSession.HttpSession, (s) => s.signOutOthers).pipe(
      Effect.map((revoked) => HttpServerResponse.unsafeJson({ revoked }))
    )
  ),
  HttpRouter.post(
    "/out-everywhere",
    Effect.flatMap(HttpSession.HttpSession, (s) => s.signOutEverywhere).pipe(
      Effect.map((revoked) => HttpServerResponse.unsafeJson({ revoked }))
    )
  )
)

class StoreLayer extends Context.Tag("test/users/StoreLayer")<StoreLayer, Layer.Layer<SessionStore.SessionStore>>() {}

const serve = Effect.gen(function*() {
  const store = yield* Layer.build(yield* StoreLayer)
  const middleware = yield* HttpSession.middleware({ secrets: [secret] })
  const url = yield* Http.serve(router.pipe(middleware)).pipe(Effect.provide(store))
  return () => Http.makeClient(url)
})

const idOf = (signed: string | undefined) => signed!.slice(0, signed!.lastIndexOf("."))

const suite = (name: string, harness: Layer.Layer<StoreLayer>) =>
  layer(harness, { excludeTestServices: true })(name, (it) => {
    it.scoped("login binds under a new id and keeps the data; sessions marks the current one", () =>
      Effect.gen(function*() {
        const client = yield* serve
        const phone = client()
        const laptop = client()
        const anonymous = yield* phone.get("/me")
        expect(anonymous.body).toEqual({ user: null, sessions: [], data: {} })
        // Reading without a cookie made no session.
        expect(phone.jar.get("sid")).toBeUndefined()
        yield* phone.post("/login/zoe", {})
        const first = phone.jar.get("sid")
        yield* phone.post("/login/zoe", {})
        expect(idOf(phone.jar.get("sid"))).not.toBe(idOf(first))
        yield* laptop.post("/login/zoe", {})
        const me = (yield* phone.get("/me")).body as {
          user: string
          sessions: Array<{ current: boolean }>
          data: unknown
        }
        expect(me.user).toBe("zoe")
        expect(me.data).toEqual({ seen: true })
        // Two logins of the phone: the first id was retired by the second.
        expect(me.sessions.map((s) => s.current).sort()).toEqual([false, true])
      }))

    it.scoped("signOutOthers keeps this session; signOutEverywhere ends this one too and expires the cookie", () =>
      Effect.gen(function*() {
        const client = yield* serve
        const [a, b, c] = [client(), client(), client()]
        for (const x of [a, b, c]) yield* x.post("/login/yan", {})
        expect((yield* a.post("/out-others", {})).body).toEqual({ revoked: 2 })
        expect(((yield* b.get("/me")).body as { user: unknown }).user).toBeNull()
        expect(((yield* c.get("/me")).body as { user: unknown }).user).toBeNull()
        expect(((yield* a.get("/me")).body as { sessions: Array<unknown> }).sessions).toHaveLength(1)
        yield* b.post("/login/yan", {})
        const out = yield* a.post("/out-everywhere", {})
        expect(out.body).toEqual({ revoked: 2 })
        expect(out.setCookies.some((cookie) => cookie.name === "sid" && Http.isExpired(cookie))).toBe(true)
        expect(((yield* b.get("/me")).body as { user: unknown }).user).toBeNull()
        expect((yield* a.post("/out-everywhere", {})).body).toEqual({ revoked: 0 })
      }))
  })

describe("HttpSession users", () => {
  suite("memory", Layer.succeed(StoreLayer, SessionStore.layerMemory()))
  suite(
    "redis",
    Layer.scoped(
      StoreLayer,
      Effect.map(RedisServer.scoped(), (redis) => Layer.orDie(SessionStore.layer(redis.settings({}))))
    )
  )
})
