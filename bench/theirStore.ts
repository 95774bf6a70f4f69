/**
 * connect-redis 10 on the node-redis 5 client it supports: the store that
 * express-session users run today, optionally on node-redis 5's client-side
 * cache (RESP3 + CLIENT TRACKING), the strongest setup express users have.
 */
import { RedisStore } from "connect-redis"
import type { SessionData } from "express-session"
import { createClient } from "redis"

export interface TheirStore {
  readonly store: RedisStore
  readonly get: (sid: string) => Promise<unknown>
  readonly set: (sid: string, session: SessionData) => Promise<unknown>
  readonly destroy: (sid: string) => Promise<unknown>
  readonly close: () => Promise<void>
}

export interface TheirOptions {
  readonly prefix?: string
  /** node-redis 5's client-side cache (RESP3), with `disableTouch` so a read sends nothing. */
  readonly clientSideCache?: boolean
}

/** A node-redis 5 client as connect-redis users set it up, with or without its client-side cache. */
const theirClient = (url: string, clientSideCache: boolean) =>
  clientSideCache
    ? createClient({ url, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 0, evictPolicy: "LRU" } })
    : createClient({ url })

export const openTheirStore = async (url: string, options: TheirOptions = {}): Promise<TheirStore> => {
  const csc = options.clientSideCache ?? false
  const client = theirClient(url, csc)
  await client.connect()
  const store = new RedisStore({ client, prefix: options.prefix ?? "sess:", ttl: 900, disableTouch: csc })
  return {
    store,
    get: (sid) => store.get(sid),
    set: (sid, session) => store.set(sid, session),
    destroy: (sid) => store.destroy(sid),
    close: () => client.close()
  }
}

/** What express-session stores for our session shape: the data plus its cookie. */
export const asExpressSession = (data: Record<string, unknown>): SessionData =>
  ({ cookie: { originalMaxAge: 900_000, httpOnly: true, path: "/" }, ...data }) as SessionData
