/**
 * An express-session `Store` on this library's engine: one Redis hash per
 * session, writes of only the fields a request changed, and the coherent
 * near-cache. For Express apps that move to Effect route by route.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import session from "express-session"
import * as Session from "./internal/codec.js"
import * as Enumeration from "./internal/enumeration.js"
import type * as SessionConfig from "./SessionConfig.js"
import { RedisCommandError, type SessionStoreError } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

type Callback = (error?: unknown) => void
type Record_ = Record<string, unknown>

/**
 * Writes a brand-new session under an id that express-session chose. The
 * store's own `create` picks its id and its `flush` never creates, so this is
 * the one operation the adapter needs beyond the store's public API.
 */

/**
 * An express-session store backed by a `SessionStore`. Pass it to
 * `session({ store, ... })` unchanged. Every method that sends a command
 * (`get`, `set`, `destroy`, `all`, `length`, `clear`) calls back with this
 * library's typed errors (`RedisConnectionError`, ...) themselves, so an
 * Express error handler can test `_tag` or `instanceof`; so does `touch`
 * when it has to ask Redis (see there); after a `get` of the same session
 * with an unchanged cookie lifetime it sends nothing and cannot fail.
 *
 * Callbacks are called on a tick of their own, outside any promise: an
 * exception thrown by a callback is an `uncaughtException`, as with
 * express-session's MemoryStore, not an `unhandledRejection`.
 *
 * The optional `all`, `length` and `clear` are there (express-session's own
 * tests use them), but they are administrative: the store keeps no index of
 * its sessions, so each is a SCAN over the keys under the prefix (on every
 * master of a Cluster), in pages, and costs time in proportion to the number
 * of sessions. `clear` also ends the sessions of the app's Effect half, which
 * share the prefix. express-session never calls them itself.
 *
 * @since 0.1.0
 * @category models
 */
export class ExpressStore extends session.Store {
  /**
   * What each request read, keyed by its session's cookie object.
   *
   * express-session does not hand `set` what `get` returned: `createSession`
   * builds `req.session` as a new object, copying the enumerable properties of
   * ours, so a symbol or non-enumerable snapshot is lost, and a string-keyed one
   * would be stored as data. What survives the copy by identity is the cookie:
   * `createSession` first replaces `sess.cookie` with `new Cookie(sess.cookie)`
   * and then copies that very object into `req.session`. So `get` returns an
   * object whose `cookie` is an accessor: its setter records the Cookie that
   * express-session installs (and its getter hands that Cookie on to the copy).
   * The plain cookie object is recorded too, in case a version of
   * express-session keeps it. Each request gets its own Cookie, so concurrent
   * requests on one session each keep the snapshot they read; a session that
   * express-session generated (a new id) has a Cookie nobody recorded.
   * Entries go with their Cookie objects, at the end of the request.
   */
  private readonly loaded = new WeakMap<object, Session.Session>()

  /**
   * @param store the store to use (its `.store`, for a `SessionStore.Async`)
   * @param release what `close` does
   */
  constructor(
    readonly store: SessionStore.SessionStore,
    private readonly release: () => Promise<void>
  ) {
    super()
  }

  /**
   * Reads a session for express-session: its data as a fresh mutable copy,
   * with its `cookie`. Calls back with nothing when it is absent or expired.
   *
   * @since 0.1.0
   */
  get(sid: string, callback: (error: unknown, session?: session.SessionData | null) => void): void {
    settle(
      run(this.store.retrieve(sid)).then((found) => Option.isSome(found) ? this.inflate(found.value) : null),
      callback
    )
  }

  /**
   * Saves what this request changed since it read the session: the fields that
   * differ from what its `get` returned are written, the ones it deleted are
   * removed, and fields it did not touch keep whatever other requests wrote
   * meanwhile. A session express-session has just generated is written whole.
   * A session destroyed meanwhile stays destroyed.
   *
   * The session's lifetime is the cookie's, as connect-redis takes it: the
   * time until `cookie.expires` (to the second, rounded up) becomes the
   * session's own sliding lifetime (see `Session.expire`), so `maxAge: 30
   * days` keeps an idle user for 30 days and `maxAge: 60_000` for a minute;
   * a cookie without `expires` (a browser-session cookie) gets the store's
   * `expire`; and a cookie already past its `expires` deletes the session.
   *
   * @since 0.1.0
   */
  set(sid: string, sess: session.SessionData, callback?: Callback): void {
    const lifetime = cookieLifetime(sess)
    if (lifetime === null) return this.destroy(sid, callback)
    const cookie = sess.cookie as object | undefined
    const read = cookie === undefined ? undefined : this.loaded.get(cookie)
    const data = dataOf(sess)
    const write = read !== undefined && read.id === sid
      ? this.flushDelta(read, data, lifetime)
      : run(this.store.create(data, { id: sid, expire: lifetime }))
    settle(
      write.then((next) => {
        // A second save in the same request (an explicit `req.session.save()`, then the one at the
        // end) is a delta against what the first one wrote.
        if (cookie !== undefined) this.loaded.set(cookie, next)
      }),
      callback
    )
  }

  /**
   * express-session calls this after every request that changed nothing (with
   * `resave: false`), after a `get` of the same session in the same request.
   * That `get` already slid the session's lifetime, as every read of the store
   * does (once a tenth of it has passed since the last refresh), so when the
   * cookie asks for the lifetime the session has, there is nothing left to
   * do: no Redis command, where connect-redis sends an EXPIRE per request.
   * When it asks for another one (a new `maxAge`, or a `touch` without a
   * `get`, as connect-redis's tests make), the session's lifetime is changed
   * to it; a cookie past its `expires` deletes the session. The stored
   * `cookie` keeps the `expires` of the last save.
   *
   * @since 0.1.0
   */
  override touch(sid: string, sess: session.SessionData, callback?: Callback): void {
    const lifetime = cookieLifetime(sess)
    if (lifetime === null) return this.destroy(sid, callback)
    const cookie = sess.cookie as object | undefined
    const read = cookie === undefined ? undefined : this.loaded.get(cookie)
    if (read !== undefined && read.id === sid && sameLifetime(read.expire, lifetime)) {
      // On a tick of its own, as every callback here: an exception it throws is the app's.
      if (callback !== undefined) process.nextTick(callback)
      return
    }
    const store = this.store
    settle(
      run(
        Effect.flatMap(
          store.retrieve(sid),
          (found) =>
            Option.isNone(found) || sameLifetime(found.value.expire, lifetime)
              ? Effect.void
              // Only the lifetime differs: the flush writes nothing but the lifetime.
              : store.flush({ ...found.value, expire: lifetime })
        )
      ),
      callback
    )
  }

  /**
   * Removes a session from Redis and from every instance's near-cache.
   *
   * @since 0.1.0
   */
  destroy(sid: string, callback?: Callback): void {
    settle(run(this.store.destroy(sid)), callback)
  }

  /**
   * Calls back with every live session, as an object keyed by session id (the
   * part of each Redis key after `prefix`; express-session's MemoryStore
   * returns the same shape), each a fresh copy of its data with its `cookie`.
   * Reading them refreshes no lifetime and fills no cache. A SCAN over the
   * prefix: see the class's note on its cost.
   *
   * @since 0.2.0
   */
  override all(
    callback: (error: unknown, sessions?: { [sid: string]: session.SessionData } | null) => void
  ): void {
    settle(run(Effect.flatMap(this.enumeration(), (sessions) => collect(sessions))), callback)
  }

  /**
   * Calls back with the number of stored sessions (a SCAN over the prefix).
   *
   * @since 0.2.0
   */
  override length(callback: (error: unknown, length?: number) => void): void {
    settle(run(Effect.map(this.enumeration(), (sessions) => sessions.ids)).then((ids) => ids.length), callback)
  }

  /**
   * Destroys every stored session, in Redis and in every instance's near-cache,
   * the app's Effect half's sessions included (they share the prefix).
   *
   * @since 0.2.0
   */
  override clear(callback?: Callback): void {
    settle(
      run(
        Effect.flatMap(
          this.enumeration(),
          (sessions) => Effect.forEach(sessions.ids, (id) => this.store.destroy(id), { concurrency: 64, discard: true })
        )
      ),
      callback
    )
  }

  /**
   * Closes what {@link open} opened; a store made with {@link fromStore} leaves
   * the shared store open. Calling it again returns the same Promise.
   *
   * @since 0.1.0
   */
  close(): Promise<void> {
    return this.closing ??= this.release()
  }
  private closing: Promise<void> | undefined

  /**
   * The ids of the stored sessions, and how to read one without touching it.
   *
   * @internal
   */
  private enumeration(): Effect.Effect<
    { readonly ids: ReadonlyArray<string>; readonly peek: Enumeration.Enumeration["peek"] },
    SessionStoreError
  > {
    const enumeration = Enumeration.of(this.store)
    return enumeration === undefined
      ? Effect.fail(
        new RedisCommandError({
          method: "ExpressStore.all",
          command: "SCAN",
          cause: new Error("the store was not made by effect-session-redis: it cannot list its sessions")
        })
      )
      : Effect.map(enumeration.ids, (ids) => ({ ids, peek: enumeration.peek }))
  }

  /**
   * A fresh mutable copy of a stored session for express-session, whose
   * `cookie` accessor records the Cookie express-session installs.
   *
   * @internal
   */
  private inflate(found: Session.Session): session.SessionData {
    // What the store hands out is frozen (it is the near-cache's copy); the app mutates req.session.
    const copy = found.snapshot === undefined ? structuredClone(found.data) as Record_ : Session.thaw(found.snapshot)
    let cookie: unknown = isObject(copy.cookie) ? copy.cookie : defaultCookie()
    delete copy.cookie
    if (isObject(cookie)) this.loaded.set(cookie, found)
    const loaded = this.loaded
    // The accessor below is its `cookie`, which TypeScript cannot see through defineProperty.
    return Object.defineProperty(copy, "cookie", {
      enumerable: true,
      configurable: true,
      get: () => cookie,
      set: (value: unknown) => {
        cookie = value
        if (isObject(value)) loaded.set(value, found)
      }
    }) as unknown as session.SessionData
  }

  /**
   * Writes what changed since `read`, and returns the session as now stored.
   *
   * @internal
   */
  private flushDelta(
    read: Session.Session,
    data: Record_,
    expire: Duration.Duration | undefined
  ): Promise<Session.Session> {
    const candidate: Session.Session = { ...read, data, expire }
    // A second save in the same request is rare: it is written against what the store holds then
    // (a session without a snapshot), so this one need not compute its own next snapshot.
    return run(this.store.flush(candidate)).then((): Session.Session => ({ ...candidate, snapshot: undefined }))
  }
}

/**
 * Opens a Redis-backed express-session store: the same settings as
 * `SessionStore.layer` (see `SessionConfig`). Rejects with
 * `SessionConfigError` naming a rejected setting, or `RedisConnectionError`.
 * Call `close()` at shutdown.
 *
 * ```ts
 * import session from "express-session"
 * import { ExpressStore } from "effect-session-redis/express"
 *
 * const store = await ExpressStore.open({ server: "127.0.0.1:6379", expire: "1 day" })
 * app.use(session({ store, secret: ["s3cret"], resave: false, saveUninitialized: false }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = async (settings: SessionConfig.Input): Promise<ExpressStore> => {
  const async = await SessionStore.open(settings)
  return new ExpressStore(async.store, async.close)
}

/**
 * An express-session store over a store the app already opened, for apps
 * whose Express and Effect halves share one store (and one near-cache): pass
 * a `SessionStore.Async` or the Effect service. Its `close()` leaves that
 * store open. Works on both backends.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStore = (store: SessionStore.Async | SessionStore.SessionStore): ExpressStore =>
  new ExpressStore("store" in store ? store.store : store, () => Promise.resolve())

// express-session hands `set` the Session object itself: its own enumerable properties are the
// data (and `cookie`); `id` and `req` are non-enumerable, methods live on the prototype.
const dataOf = (sess: session.SessionData): Record_ => {
  const data: Record_ = {}
  for (const key of Object.keys(sess)) {
    Object.defineProperty(data, key, {
      value: (sess as unknown as Record_)[key],
      enumerable: true,
      writable: true,
      configurable: true
    })
  }
  return data
}

// What express-session's Cookie holds by default, for a session written by the app's Effect half,
// which stores no `cookie` field: createSession reads `sess.cookie.expires` and would throw.
const defaultCookie = (): Record_ => ({ originalMaxAge: null, expires: null, httpOnly: true, path: "/" })

const isObject = (u: unknown): u is object => typeof u === "object" && u !== null

/**
 * The lifetime express-session's cookie asks for, read as connect-redis reads
 * it: the time until `cookie.expires`, in whole seconds rounded up (a cookie
 * that express-session re-touches on every request then keeps asking for the
 * same lifetime, which is not rewritten); `undefined` (the store's) without an
 * `expires`; `null` when it is already past.
 */
const cookieLifetime = (sess: session.SessionData): Duration.Duration | undefined | null => {
  const cookie: unknown = sess.cookie
  const expires: unknown = isObject(cookie) ? (cookie as { readonly expires?: unknown }).expires : undefined
  const at = expires instanceof Date
    ? expires.getTime()
    : typeof expires === "string" || typeof expires === "number"
    ? new Date(expires).getTime()
    : Number.NaN
  if (!Number.isFinite(at)) return undefined
  const millis = at - Date.now()
  return millis <= 0 ? null : Duration.seconds(Math.ceil(millis / 1000))
}

const sameLifetime = (a: Duration.Duration | undefined, b: Duration.Duration | undefined): boolean =>
  (a === undefined ? undefined : Duration.toMillis(a)) === (b === undefined ? undefined : Duration.toMillis(b))

// An operation's result, or a rejection with the typed error itself (not a FiberFailure).
const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromiseExit(effect).then((exit) =>
    Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause))
  )

// The callback runs on a tick of its own, outside the promise: what it throws is an uncaughtException
// (as with express-session's MemoryStore), not a rejection nobody handles.
const settle = <A>(promise: Promise<A>, callback: ((error: unknown, value?: A) => void) | undefined): void => {
  if (callback === undefined) {
    promise.catch(() => undefined)
    return
  }
  promise.then(
    (value) => process.nextTick(callback, null, value),
    (error: unknown) => process.nextTick(callback, error)
  )
}

// Every session the enumeration lists and can still read, keyed by id, as express-session reads them.
const collect = (
  sessions: { readonly ids: ReadonlyArray<string>; readonly peek: Enumeration.Enumeration["peek"] }
): Effect.Effect<{ [sid: string]: session.SessionData }, SessionStoreError> =>
  Effect.map(
    Effect.forEach(sessions.ids, (id) => Effect.map(sessions.peek(id), (found) => [id, found] as const), {
      concurrency: 64
    }),
    (found) => {
      const out: { [sid: string]: session.SessionData } = {}
      for (const [id, session] of found) {
        if (Option.isNone(session)) continue
        const copy = structuredClone(session.value.data) as Record_
        if (!isObject(copy.cookie)) copy.cookie = defaultCookie()
        out[id] = copy as unknown as session.SessionData
      }
      return out
    }
  )
