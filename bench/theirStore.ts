/**
 * connect-redis 10 on the node-redis 5 client it supports: the store that
 * express-session users run today.
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

export const openTheirStore = async (url: string, prefix = "sess:"): Promise<TheirStore> => {
  const client = createClient({ url })
  await client.connect()
  const store = new RedisStore({ client, prefix, ttl: 900 })
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
