/**
 * connect-redis 10's own store tests, run against ExpressStore (issue 20,
 * point 12). They mirror `lifecycleTest` in connect-redis 10.0.0's
 * `index_test.ts` (shipped in its npm package: node_modules/connect-redis/
 * index_test.ts; MIT, TJ Holowaychuk and Marc Harter), step by step and
 * assertion by assertion, through an adapter:
 *
 * - connect-redis's methods return promises when given no callback; the
 *   adapter wraps ExpressStore's callbacks the same way.
 * - `client.ttl("sess:<id>")` reads the TTL of our key for that session
 *   (`prefix` + id).
 * - connect-redis's default `ttl` is one day; the store here is opened with
 *   `expire: 86400` to match, so the "≥ 86399" check means the same.
 * - `ids()` is connect-redis's own (not express-session's); the adapter takes
 *   the keys of `all`. `all` returns sessions keyed by id (express-session's
 *   MemoryStore shape) where connect-redis returns an array whose entries
 *   carry `id`; the adapter turns one into the other before comparing.
 *
 * Left out, with the reason:
 * - The whole "defaults" test: it asserts connect-redis's own option
 *   properties (`store.client`, `prefix` "sess:", `ttl` 86400, `scanCount`,
 *   `serializer`, `disableTouch`, `disableTTL`), which ExpressStore does not
 *   have: its settings are this library's (`SessionConfig`).
 *
 * The TTL taken from `cookie.expires` (a session set to expire in 60 s has a
 * TTL of at most 60 s; one set to expire in the past is deleted) is its own
 * test below. The ids are padded to express-session's length (see `sid123`).
 */
import { describe, expect, it } from "@effect/vitest"
import session from "express-session"
import type { Redis } from "ioredis"
import { ExpressStore } from "../src/express.js"
import { RedisServer } from "./support/index.js"

type Store = ExpressStore.ExpressStore
type Sess = Record<string, unknown> & { readonly cookie: Record<string, unknown> }

/** connect-redis's promise forms of the store's methods. */
const promised = (store: Store) => {
  const call = <A>(f: (callback: (error: unknown, value?: A) => void) => void) =>
    new Promise<A>((resolve, reject) => f((error, value) => (error ? reject(error) : resolve(value as A))))
  const all = () =>
    call<Record<string, Sess>>((cb) => store.all(cb as never)).then((byId) =>
      Object.entries(byId).map(([id, sess]) => ({ id, ...sess }))
    )
  return {
    set: (sid: string, sess: object) => call<void>((cb) => store.set(sid, sess as session.SessionData, cb)),
    get: (sid: string) => call<session.SessionData | null>((cb) => store.get(sid, cb)),
    touch: (sid: string, sess: object) => call<void>((cb) => store.touch(sid, sess as session.SessionData, cb)),
    destroy: (sid: string) => call<void>((cb) => store.destroy(sid, cb)),
    length: () => call<number>((cb) => store.length(cb)),
    clear: () => call<void>((cb) => store.clear(cb)),
    ids: () => all().then((sessions) => sessions.map((s) => s.id)),
    all
  }
}

/** `client.ttl("sess:" + sid)` in connect-redis's test: the TTL of our key for `sid`. */
// connect-redis's test names its sessions "123", "456" and "789"; this store takes only ids of
// express-session's shape (16 to 128 characters of A-Z a-z 0-9 - _), so each is padded to 32.
const sid123 = "123".repeat(11).slice(0, 32)
const sid456 = "456".repeat(11).slice(0, 32)
const sid789 = "789".repeat(11).slice(0, 32)

const ttlOf = (client: Redis, sid: string) => client.ttl(`session:${sid}`)

// connect-redis's `load(store, count)`: `count` sessions whose cookie expires in a minute.
const load = async (store: ReturnType<typeof promised>, count: number) => {
  const cookie = new session.Cookie()
  for (let sid = 0; sid < count; sid++) {
    cookie.expires = new Date(Date.now() + 60_000)
    await store.set("s" + String(sid).padStart(31, "0"), { cookie })
  }
}

describe("connect-redis 10's lifecycle test, against ExpressStore", () => {
  const withStore = async (f: (store: ReturnType<typeof promised>, client: Redis) => Promise<void>) => {
    const redis = await RedisServer.start()
    const store = await ExpressStore.open(redis.settings({ expire: 86400 }))
    try {
      await f(promised(store), redis.client())
    } finally {
      await store.close()
      await redis.stop()
    }
  }

  it(
    "redis: set, get, ttl, touch, length, ids, all, destroy, clear, a thousand sessions",
    () =>
      withStore(async (store, client) => {
        await store.clear()

        const sess = { foo: "bar", cookie: { originalMaxAge: null } }
        await store.set(sid123, sess)

        let res: unknown = await store.get(sid123)
        expect(res).toEqual(sess)

        let ttl = await ttlOf(client, sid123)
        expect(ttl).toBeGreaterThanOrEqual(86399)

        ttl = 60
        const expires = new Date(Date.now() + ttl * 1000)
        await store.set(sid456, { cookie: { originalMaxAge: null, expires } })
        // (connect-redis: ttl("sess:456") ≤ 60; see the test of cookie.expires below)

        ttl = 90
        const expires2 = new Date(Date.now() + ttl * 1000)
        await store.touch(sid456, { cookie: { originalMaxAge: null, expires: expires2 } })
        ttl = await ttlOf(client, sid456)
        expect(ttl).toBeGreaterThan(60)

        res = await store.length()
        expect(res).toBe(2) // stored two keys length

        res = (await store.ids()).sort()
        expect(res).toEqual([sid123, sid456])

        res = (await store.all()).sort((a, b) => (a.id > b.id ? 1 : -1))
        expect(res).toEqual([
          { id: sid123, foo: "bar", cookie: { originalMaxAge: null } },
          { id: sid456, cookie: { originalMaxAge: null, expires: expires.toISOString() } }
        ])

        await store.destroy(sid456)
        res = await store.length()
        expect(res).toBe(1) // one key remains

        await store.clear()

        res = await store.length()
        expect(res).toBe(0) // no keys remain

        const count = 1000
        await load(store, count)

        res = await store.length()
        expect(res).toBe(count)

        await store.clear()
        res = await store.length()
        expect(res).toBe(0)

        const future = new Date(Date.now() + ttl * 1000) // expires in the future
        await store.set(sid789, { cookie: { originalMaxAge: null, expires: future } })

        res = await store.length()
        expect(res).toBe(1)
      }),
    60_000
  )

  it("the TTL follows cookie.expires: at most 60 s for a cookie expiring in 60 s; gone for one in the past", () =>
    withStore(async (store, client) => {
      const ttl = 60
      await store.set(sid456, { cookie: { originalMaxAge: null, expires: new Date(Date.now() + ttl * 1000) } })
      expect(await ttlOf(client, sid456)).toBeLessThanOrEqual(60)

      await store.set(sid789, { cookie: { originalMaxAge: null, expires: new Date(Date.now() + ttl * 1000) } })
      await store.set(sid789, { cookie: { originalMaxAge: null, expires: new Date(Date.now() - ttl * 1000) } })
      // connect-redis: length 0 ("no key remains and that includes session 789") after its clear; here
      // session 456 is there too.
      expect((await store.ids()).includes(sid789)).toBe(false)
    }))
})
