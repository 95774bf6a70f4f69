/**
 * Runs a few store operations with `debug: true`, so that a test can read
 * what the store writes to stderr. Settings come from REDIS_SESSION_*; it
 * prints the session id it created on stdout.
 */
import * as Effect from "effect/Effect"
import { SessionStore } from "../../src/index.js"

const program = Effect.gen(function*() {
  const store = yield* SessionStore.SessionStore
  const session = yield* store.create({ secret: "value-that-must-not-be-logged" })
  yield* store.retrieve(session.id)
  yield* store.destroy(session.id)
  yield* store.retrieve(session.id)
  return session.id
})

Effect.runPromise(Effect.provide(program, SessionStore.layerConfig())).then(
  (id) => process.stdout.write(id + "\n"),
  (error) => {
    process.stderr.write(String(error) + "\n")
    process.exit(1)
  }
)
