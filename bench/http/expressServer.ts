/**
 * Their HTTP server: express 5 + express-session + connect-redis (node-redis
 * 5 client), as its documentation sets it up; or the same on node-redis 5's
 * client-side cache (RESP3) with `disableTouch`, the strongest express setup
 * known; or the same routes with no sessions at all.
 */
import { RedisStore } from "connect-redis"
import express from "express"
import session from "express-session"
import { createClient } from "redis"
import { ExpressStore } from "../../src/express.js"
import { makeSessionData } from "../sessionShape.js"

const connectRedis = async (url: string, csc: boolean): Promise<session.Store> => {
  const client = csc
    ? createClient({ url, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 0, evictPolicy: "LRU" } })
    : createClient({ url })
  await client.connect()
  return new RedisStore({ client, prefix: "sess:", ttl: 900, disableTouch: csc })
}

// express-session's typings know only declared keys; the bench uses arbitrary ones.
const fields = (req: express.Request): Record<string, unknown> => req.session as unknown as Record<string, unknown>

export const startExpress = async (
  options: {
    readonly redisUrl: string
    readonly sessions: boolean
    /** node-redis's client-side cache, with connect-redis's `disableTouch` so a cached read sends nothing. */
    readonly clientSideCache?: boolean
    /** Our engine under express-session: effect-session-redis/express. */
    readonly ourStore?: boolean
    /** `"host:port"`, for our store. */
    readonly redisServer?: string
    readonly ready: (port: number) => void
  }
) => {
  const csc = options.clientSideCache ?? false
  const app = express()
  app.disable("x-powered-by")
  app.set("etag", false)
  if (options.sessions) {
    const store = options.ourStore === true
      ? await ExpressStore.open({ server: options.redisServer ?? "", expire: 900 })
      : await connectRedis(options.redisUrl, csc)
    app.use(session({
      store,
      secret: "bench-secret-not-for-production",
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 900_000, httpOnly: true, sameSite: "lax" }
    }))
    app.get("/login", (req, res) => {
      Object.assign(fields(req), makeSessionData())
      res.type("text").send("ok")
    })
    app.get("/read", (req, res) => {
      res.type("text").send(String(fields(req)["userName"]))
    })
    app.post("/write", (req, res) => {
      const s = fields(req)
      s["counter"] = Number(s["counter"] ?? 0) + 1
      res.type("text").send("ok")
    })
    app.get("/set/:field", (req, res) => {
      fields(req)[req.params.field] = true
      res.type("text").send("ok")
    })
    app.get("/dump", (req, res) => {
      res.json(fields(req))
    })
  } else {
    app.get("/login", (_req, res) => void res.type("text").send("ok"))
    app.get("/read", (_req, res) => void res.type("text").send("user-0"))
    app.post("/write", (_req, res) => void res.type("text").send("ok"))
  }
  const server = app.listen(0, "127.0.0.1", () => {
    const address = server.address()
    options.ready(typeof address === "object" && address !== null ? address.port : 0)
  })
}
