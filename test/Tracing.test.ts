import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { SessionStore } from "../src/index.js"
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
