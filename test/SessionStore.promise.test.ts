/**
 * `SessionStore.open`: the store for async code, against a real redis-server.
 * Rejections are the typed errors themselves.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisConnectionError, SessionStore } from "../src/index.js"
import { SessionConfigError } from "../src/SessionError.js"
import { RedisServer } from "./support/index.js"

describe("SessionStore.open (Promise API)", () => {
  it("creates, reads, flushes, touches, regenerates and destroys through Promises, and closes once", async () => {
    const server = await RedisServer.start()
    try {
      const store = await SessionStore.open(server.settings())
      expect(store.backend).toBe("redis")
      const session = await store.create({ cart: [] })
      await store.flush({ ...session, data: { ...session.data, cart: ["apple"] } })
      expect((await store.retrieve(session.id))?.data).toEqual({ cart: ["apple"] })
      await store.touch(session.id)
      const moved = await store.regenerate((await store.retrieve(session.id))!)
      expect(moved?.data).toEqual({ cart: ["apple"] })
      expect(await store.retrieve(session.id)).toBeUndefined()
      expect(await store.regenerate(session)).toBeUndefined()
      await store.destroy(moved!.id)
      expect(await store.retrieve(moved!.id)).toBeUndefined()
      const closing = store.close()
      expect(store.close()).toBe(closing)
      await closing
      // Closed: the connection is gone, and a call says so with a typed rejection.
      await expect(store.retrieve(session.id)).rejects.toBeInstanceOf(RedisConnectionError)
    } finally {
      await server.stop()
    }
  })

  it("rejects with the typed error itself: a bad setting, then an unreachable server", async () => {
    const bad = await SessionStore.open({ server: "127.0.0.1:6380", database: -1 }).catch((e: unknown) => e)
    expect(bad).toBeInstanceOf(SessionConfigError)
    expect(bad).toMatchObject({ _tag: "SessionConfigError", field: "database" })

    const server = await RedisServer.start()
    const settings = server.settings({ connectTimeout: 2000 })
    await server.stop()
    const down = await SessionStore.open(settings).catch((e: unknown) => e)
    expect(down).toBeInstanceOf(RedisConnectionError)
    expect(down).toMatchObject({ _tag: "RedisConnectionError", method: "connect" })
  })

  it("opens the in-memory backend the same way", async () => {
    const store = await SessionStore.openMemory()
    const session = await store.create({ n: 1 })
    expect((await store.retrieve(session.id))?.data).toEqual({ n: 1 })
    await store.close()
  })
})
