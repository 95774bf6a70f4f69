import { type SessionConfig, SessionStore } from "effect-session-redis"

// Open the store once (this connects to Redis), call it from async code, close it at shutdown.
export async function addToCart(settings: SessionConfig.Input): Promise<unknown> {
  const store = await SessionStore.open(settings) // rejects with a typed error, e.g. RedisConnectionError
  try {
    const session = await store.create({ userId: 42, cart: [] })
    await store.flush({ ...session, data: { ...session.data, cart: ["apple"] } })
    return (await store.retrieve(session.id))?.data // { userId: 42, cart: ["apple"] }
  } finally {
    await store.close()
  }
}
