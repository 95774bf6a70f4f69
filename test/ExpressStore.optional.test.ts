/**
 * ExpressStore's optional methods and its callbacks (issue 20, point 12):
 * `length`, `all` and `clear` on one server, on the in-memory backend and on
 * a Redis Cluster (a SCAN on every master); `all` keyed by session id,
 * reading without refreshing lifetimes; `clear` reaching every instance's
 * near-cache; a callback that throws becomes an uncaughtException, never an
 * unhandledRejection; `touch` with Redis down calls back without an error,
 * as documented, while `get` gets the typed error.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import session from "express-session"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { ExpressStore } from "../src/express.js"
import { RedisConnectionError } from "../src/SessionError.js"
import * as SessionStore from "../src/SessionStore.js"
import { RedisServer } from "./support/index.js"
import * as RedisCluster from "./support/RedisCluster.js"

const root = fileURLToPath(new URL("..", import.meta.url))

const call = <A>(f: (callback: (error: unknown, value?: A) => void) => void): Promise<A> =>
  new Promise((resolve, reject) => f((error, value) => (error ? reject(error) : resolve(value as A))))

const lengthOf = (store: ExpressStore.ExpressStore) => call<number>((cb) => store.length(cb))
const allOf = (store: ExpressStore.ExpressStore) =>
  call<Record<string, session.SessionData>>((cb) => store.all(cb as never))
const clear = (store: ExpressStore.ExpressStore) => call<void>((cb) => store.clear(cb))
const set = (store: ExpressStore.ExpressStore, sid: string, data: object) =>
  call<void>((cb) => store.set(sid, { cookie: new session.Cookie(), ...data } as session.SessionData, cb))
const get = (store: ExpressStore.ExpressStore, sid: string) =>
  call<session.SessionData | null>((cb) => store.get(sid, cb))

/** The same checks on any backend: `make` opens a fresh store, `other` a second instance on the same data. */
const lifecycle = async (store: ExpressStore.ExpressStore) => {
  await clear(store)
  expect(await lengthOf(store)).toBe(0)
  expect(await allOf(store)).toEqual({})
  const ids = Array.from({ length: 25 }, (_, i) => `sid-${String(i).padStart(2, "0")}-${"x".repeat(20)}`)
  for (const [i, sid] of ids.entries()) await set(store, sid, { n: i })
  expect(await lengthOf(store)).toBe(25)
  const all = await allOf(store)
  // Keyed by session id, each with its data and its cookie.
  expect(Object.keys(all).sort()).toEqual(ids)
  expect(all[ids[3]!]).toMatchObject({ n: 3, cookie: { path: "/" } }) // Fresh copies: changing one changes nothing stored.
  ;(all[ids[3]!] as unknown as Record<string, unknown>).n = 99
  expect(await get(store, ids[3]!)).toMatchObject({ n: 3 })
  await call<void>((cb) => store.destroy(ids[0]!, cb))
  expect(await lengthOf(store)).toBe(24)
  await clear(store)
  expect(await lengthOf(store)).toBe(0)
  expect(await get(store, ids[5]!)).toBeNull()
}

describe("ExpressStore.length, all and clear", () => {
  it("on one Redis server: keys by session id, skips user indexes, reads without refreshing lifetimes", async () => {
    const redis = await RedisServer.start()
    const a = await ExpressStore.open(redis.settings({ expire: 100 }))
    const b = await ExpressStore.open(redis.settings({ expire: 100 }))
    try {
      await lifecycle(a)
      // A session bound to a user has an index key (a sorted set) under the same prefix: not a session.
      const bound = await Effect.runPromise(a.store.create({ v: 1 }, { user: "ada" }))
      expect(Object.keys(await allOf(a))).toEqual([bound.id])
      expect(await lengthOf(a)).toBe(1)
      // `all` reads without sliding the lifetime: a TTL set short by hand stays short.
      const raw = redis.client()
      await raw.pexpire(`session:${bound.id}`, 50_000)
      await allOf(a)
      expect(await raw.pttl(`session:${bound.id}`)).toBeLessThanOrEqual(50_000)
      // `clear` ends the session on every instance, near-caches included.
      await Effect.runPromise(b.store.retrieve(bound.id))
      await clear(a)
      await Effect.runPromise(
        RedisServer.eventually(
          Effect.flatMap(
            b.store.retrieve(bound.id),
            (found) => found._tag === "None" ? Effect.void : Effect.fail("still cached")
          )
        )
      )
      expect(await raw.dbsize()).toBeLessThanOrEqual(1) // at most the user's index, whose member is gone
    } finally {
      await Promise.all([a.close(), b.close()])
      await redis.stop()
    }
  })

  it("on the in-memory backend", async () => {
    const store = ExpressStore.fromStore(await SessionStore.openMemory())
    await lifecycle(store)
  })

  it("on a Redis Cluster: every master's keys", async () => {
    const cluster = await RedisCluster.start()
    const store = await ExpressStore.open(cluster.settings())
    try {
      await lifecycle(store)
      // The 25 sessions of the lifecycle spread over the masters: the count above needed all of them.
      const masters = await cluster.masters()
      for (const [i] of Array.from({ length: 30 }).entries()) await set(store, `spread-${i}-${"y".repeat(24)}`, {})
      const perMaster = await Promise.all(masters.map((m) => m.client().dbsize()))
      expect(perMaster.filter((n) => n > 0).length).toBeGreaterThan(1)
      expect(await lengthOf(store)).toBe(30)
    } finally {
      await store.close()
      await cluster.stop()
    }
  }, 120_000)

  it("a store this library did not make: a typed error, not a crash", async () => {
    const memory = await SessionStore.openMemory()
    const foreign = new ExpressStore.ExpressStore({ ...memory.store }, () => Promise.resolve())
    await expect(lengthOf(foreign)).rejects.toMatchObject({ _tag: "RedisCommandError" })
  })
})

describe("ExpressStore callbacks", () => {
  it("a callback that throws is an uncaughtException, never an unhandledRejection", async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        join(root, "node_modules/.bin/tsx"),
        [join(root, "test/support/expressCallbacks.ts")],
        { cwd: root },
        (error, stdout) => (error === null ? resolve(stdout) : reject(error))
      )
    )
    const outcomes = JSON.parse(out) as Record<string, ReadonlyArray<string>>
    for (const method of ["set", "get", "touch", "all", "length", "destroy", "clear"]) {
      expect(outcomes[method], method).toEqual(["uncaughtException"])
    }
  }, 60_000)

  it("with Redis down, get and a touch that must ask Redis call back with the typed error", async () => {
    const downId = "sid-down".padEnd(32, "x")
    const redis = await RedisServer.start()
    const store = await ExpressStore.open(redis.settings())
    try {
      await set(store, downId, { v: 1 })
      await redis.kill()
      // Until the store has seen the connection close, the session may still be a near-cache hit
      // (a given id's create is cached): poll until the read reaches Redis.
      let error: unknown = undefined
      for (let attempt = 0; attempt < 500 && error === undefined; attempt++) {
        error = await get(store, downId).then(() => undefined, (e: unknown) => e)
        if (error === undefined) await new Promise((resolve) => setImmediate(resolve))
      }
      expect(error).toBeInstanceOf(RedisConnectionError)
      await expect(lengthOf(store)).rejects.toBeInstanceOf(RedisConnectionError)
      const touched = await new Promise<unknown>((resolve) =>
        store.touch(
          downId,
          { cookie: new session.Cookie() } as session.SessionData,
          (e) => resolve(e ?? "no error")
        )
      )
      // Without a get in the same request, touch reads the session for its lifetime: typed, as get.
      expect(touched).toBeInstanceOf(RedisConnectionError)
    } finally {
      await store.close()
      await redis.stop()
    }
  })
})
