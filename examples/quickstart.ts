import { Effect, Option } from "effect"
import { SessionStore } from "effect-session-redis"

const program = Effect.gen(function*() {
  const store = yield* SessionStore.SessionStore
  const session = yield* store.create({ user: "ada", cart: [] })
  const found = yield* store.retrieve(session.id) // Option<Session>; a cache hit from here on
  if (Option.isSome(found)) {
    const s = found.value
    // Session data is frozen: spread it to change it. Only `cart` is written.
    yield* store.flush({ ...s, data: { ...s.data, cart: ["book"] } })
  }
  yield* store.destroy(session.id)
})

program.pipe(
  Effect.provide(SessionStore.layer({ server: "127.0.0.1:6379", password: "secret", expire: 900 })),
  Effect.runPromise
)
