import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { HttpSession, SessionStore } from "../src/index.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

/** A tracer that records the names of the spans it is asked to make. */
const recordingTracer = (names: Array<string>): Tracer.Tracer => {
  const native = Effect.runSync(Effect.tracer)
  return Tracer.make({
    span: (name, ...rest) => {
      names.push(name)
      return native.span(name, ...rest)
    },
    context: native.context
  })
}

describe("tracing", () => {
  it.scopedLive("writes are spans when the app installs a tracer; reads never are, and nothing is traced otherwise", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped()
      const store = yield* Effect.map(
        Layer.build(SessionStore.layer(server.settings())),
        Context.get(SessionStore.SessionStore)
      )
      const names: Array<string> = []
      const traced = Effect.gen(function*() {
        const session = yield* store.create({ n: 1 })
        const found = Option.getOrThrow(yield* store.retrieve(session.id))
        yield* store.flush({ ...found, data: { n: 2 } })
        yield* store.touch(session.id)
        yield* store.destroy(session.id)
      })
      yield* Effect.withTracer(traced, recordingTracer(names))
      const ours = names.filter((name) => name.startsWith("SessionStore."))
      expect(ours).toEqual(["SessionStore.create", "SessionStore.flush", "SessionStore.touch", "SessionStore.destroy"])
    }).pipe(RedisServer.hangGuard(30_000, "tracing")))
})

describe("tracing over HTTP", () => {
  const router = HttpRouter.empty.pipe(
    HttpRouter.post(
      "/set",
      Effect.as(Effect.flatMap(HttpSession.HttpSession, (s) => s.set("n", 1)), HttpServerResponse.text("ok"))
    ),
    HttpRouter.get(
      "/get",
      Effect.as(Effect.flatMap(HttpSession.HttpSession, (s) => s.get("n")), HttpServerResponse.text("ok"))
    )
  )

  const run = (traced: boolean) =>
    Effect.gen(function*() {
      const names: Array<string> = []
      const middleware = yield* HttpSession.middleware({ secrets: ["secret-for-tracing-tests-0123456789abc"] })
      const app = middleware(router)
      const url = yield* Http.serve(traced ? Effect.withTracer(app, recordingTracer(names)) : app)
      const client = Http.makeClient(url)
      yield* client.post("/set")
      yield* client.get("/get")
      return names.filter((name) => name.startsWith("HttpSession."))
    }).pipe(Effect.provide(SessionStore.layerMemory()))

  it.scopedLive("the middleware's load and commit are spans under an installed tracer, and only then", () =>
    Effect.gen(function*() {
      // The first request has no cookie, so nothing is loaded from the store; the second reads it.
      expect(yield* run(true)).toEqual(["HttpSession.commit", "HttpSession.load"])
      expect(yield* run(false)).toEqual([])
    }))
})
