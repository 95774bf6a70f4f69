/**
 * The Express entry point, `effect-session-redis/express`: an express-session
 * `Store` on this library's engine. It is a separate entry so that apps
 * without Express never load express-session, which is an optional peer
 * dependency.
 *
 * ```ts
 * import session from "express-session"
 * import { ExpressStore } from "effect-session-redis/express"
 *
 * const store = await ExpressStore.open({ server: "127.0.0.1:6379" })
 * app.use(session({ store, secret: ["s3cret"], resave: false, saveUninitialized: false }))
 * // at shutdown
 * await store.close()
 * ```
 *
 * @since 0.1.0
 */

/**
 * An express-session store backed by a `SessionStore`: `ExpressStore.open`,
 * `ExpressStore.fromStore`, and the `ExpressStore.ExpressStore` class.
 *
 * @since 0.1.0
 */
export * as ExpressStore from "./ExpressStore.js"
