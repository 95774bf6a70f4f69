/**
 * A second app instance in its own process, for the cross-process coherence
 * test: it reads settings from REDIS_SESSION_* and applies one operation
 * given on the command line, then exits.
 *
 *   remoteWriter.ts set <id> <field> <json>   |   remoteWriter.ts destroy <id>
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { SessionStore } from "../../src/index.js"

const [operation, id, field, json] = process.argv.slice(2)

const program = Effect.gen(function*() {
  const store = yield* SessionStore.SessionStore
  if (operation === "destroy") return yield* store.destroy(id!)
  const session = Option.getOrThrow(yield* store.retrieve(id!))
  yield* store.flush({ ...session, data: { ...session.data, [field!]: JSON.parse(json!) } })
})

Effect.runPromise(Effect.provide(program, SessionStore.layerConfig())).then(
  () => process.stdout.write("ok\n"),
  (error) => {
    process.stderr.write(String(error) + "\n")
    process.exit(1)
  }
)
