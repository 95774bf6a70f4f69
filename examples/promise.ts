import { ManagedRuntime, Option } from "effect"
import { type SessionConfig, SessionStore } from "effect-session-redis"

// Build the store once (this connects to Redis), call it from async code, dispose it at shutdown.
export async function addToCart(settings: SessionConfig.Input): Promise<unknown> {
  const runtime = ManagedRuntime.make(SessionStore.layer(settings))
  try {
    const store = await runtime.runPromise(SessionStore.SessionStore)
    const session = await runtime.runPromise(store.create({ userId: 42, cart: [] }))
    await runtime.runPromise(store.flush({ ...session, data: { ...session.data, cart: ["apple"] } }))
    const found = await runtime.runPromise(store.retrieve(session.id))
    return Option.getOrNull(found)?.data // { userId: 42, cart: ["apple"] }
  } finally {
    await runtime.dispose()
  }
}
