/**
 * One request's session: the `HttpSession` service a handler yields, the
 * end-of-request commit, and the cookie on the response. The state is a
 * {@link RequestState.State} value; every change after the load is synchronous,
 * hence atomic with respect to the request's other fibers.
 *
 * Everything here runs on every request, so it is one object with its
 * methods on the prototype, and the paths of a request that only reads a
 * cached session make as few Effect steps as possible.
 */
import type * as Cookies from "@effect/platform/Cookies"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type { HttpSession, HttpSessionInfo, LoginOptions } from "../HttpSession.js"
import type * as SessionCookie from "../SessionCookie.js"
import { SessionEncodeError, type SessionStoreError } from "../SessionError.js"
import type { SessionStore } from "../SessionStore.js"
import * as Session from "./codec.js"
import type { Options } from "./httpOptions.js"
import * as RequestState from "./requestState.js"

/** A signed session id is at most 2 + 128 + 1 + 43 characters; anything longer is not worth hashing. */
const maxCookieLength = 180

/**
 * The per-request session. It implements the public service directly, so a
 * request costs one allocation here, not one closure per operation.
 *
 * @internal
 */
export class RequestSession implements HttpSession {
  private state: RequestState.State = RequestState.unloaded
  /**
   * The data with this request's `set`s and `unset`s since it was last handed out: one copy of the
   * loaded data, changed in place, so that a change costs O(1) and not a copy of the session. It is
   * frozen into the state (see `published`) before anything reads the data whole or moves the state on.
   */
  private draft: Record<string, unknown> | undefined = undefined
  private incoming: Option.Option<SessionCookie.Verified> | undefined = undefined
  private committed = false
  private action: RequestState.CookieAction = RequestState.noCookie
  /** The session whose lifetime the cookie's `Max-Age` follows (when no explicit `maxAge` is set). */
  private cookieSession: Session.Session | undefined = undefined
  /** Made on the first `id` of a new session only: two fibers must not create two sessions. */
  private creating: Effect.Effect<string, SessionStoreError> | undefined = undefined
  private readonly raw: string | undefined

  constructor(
    private readonly options: Options,
    private readonly signer: SessionCookie.Signer,
    private readonly store: SessionStore,
    request: HttpServerRequest.HttpServerRequest,
    /** Whether the app installed a tracer: spans cost more than a cache hit, so only then. */
    private readonly traced: boolean
  ) {
    // `request.cookies` is typed as a full record, but the name may be absent or an inherited key
    // such as "constructor".
    const cookies = request.cookies
    this.raw = Object.hasOwn(cookies, options.name) ? cookies[options.name] : undefined
  }

  // -------------------------------------------------------------------------
  // The cookie
  // -------------------------------------------------------------------------

  /** The id the request's cookie carries, if its signature checks out. Verified at most once. */
  private cookie(): Option.Option<SessionCookie.Verified> {
    if (this.incoming === undefined) {
      const raw = this.raw
      this.incoming = typeof raw === "string" && raw.length <= maxCookieLength
        ? Option.filter(this.signer.verify(raw), (v) => this.signer.isId(v.value))
        : Option.none()
    }
    return this.incoming
  }

  // -------------------------------------------------------------------------
  // Loading
  // -------------------------------------------------------------------------

  /**
   * Reads the stored session named by the cookie, then runs `f` on the loaded state. Two fibers of
   * one request that load at once each read (a cache hit, usually); the first answer wins and the
   * other is dropped. That needs no lock and no Deferred on the common path, and no fiber can wait
   * on another that was interrupted.
   */
  private load<A>(f: (state: RequestState.Loaded) => A): Effect.Effect<A, SessionStoreError> {
    const cookie = this.cookie()
    if (Option.isNone(cookie)) return Effect.sync(() => f(this.settle(undefined)))
    return Effect.map(
      this.traced
        ? Effect.withSpan(this.store.retrieve(cookie.value.value), "HttpSession.load")
        : this.store.retrieve(cookie.value.value),
      (found) => f(this.settle(Option.getOrUndefined(found)))
    )
  }

  /** Installs what a load found, unless another fiber of the request already moved on (a destroy wins). */
  private settle(found: Session.Session | undefined): RequestState.Loaded {
    if (this.state._tag === "Unloaded") this.state = RequestState.loaded(found)
    return this.state as RequestState.Loaded
  }

  /** Runs `f` on the loaded state, loading it first if needed. */
  private withLoaded<A>(f: (state: RequestState.Loaded) => A): Effect.Effect<A, SessionStoreError> {
    return Effect.suspend(() => {
      const state = this.state
      return state._tag === "Unloaded" ? this.load(f) : Effect.succeed(f(state))
    })
  }

  /** Runs the effect `f` makes from the loaded state, loading it first if needed. */
  private withLoadedEffect<A>(
    f: (state: RequestState.Loaded) => Effect.Effect<A, SessionStoreError>
  ): Effect.Effect<A, SessionStoreError> {
    return Effect.suspend(() => {
      const state = this.state
      return state._tag === "Unloaded" ? Effect.flatten(this.load(f)) : f(state)
    })
  }

  /** Moves the loaded state on, loading it first if needed. */
  private update(f: (state: RequestState.Loaded) => RequestState.Loaded): Effect.Effect<void, SessionStoreError> {
    return this.withLoaded(() => {
      this.state = f(this.published())
    })
  }

  /** The loaded state, with the draft's changes frozen into it. */
  private published(): RequestState.Loaded {
    const state = this.state as RequestState.Loaded
    const draft = this.draft
    if (draft === undefined) return state
    this.draft = undefined
    // A copy: changed in place, the draft may have become a hash table (V8 "dictionary mode"), which every
    // later spread of the data would pay for.
    return this.state = RequestState.withData(state, Object.freeze({ ...draft }))
  }

  /** Removes a field; a field that is not there costs nothing, not even a draft. */
  private remove(key: string): void {
    if (Object.hasOwn(this.draft ?? (this.state as RequestState.Loaded).data, key)) delete this.edit()[key]
  }

  /** The draft, copied from the loaded data on the first change since it was last handed out. */
  private edit(): Record<string, unknown> {
    return this.draft ??= { ...(this.state as RequestState.Loaded).data }
  }

  // -------------------------------------------------------------------------
  // The service
  // -------------------------------------------------------------------------

  get id(): Effect.Effect<string, SessionStoreError> {
    return this.withLoadedEffect((state) => {
      const id = RequestState.storedId(state)
      return id !== undefined ? Effect.succeed(id) : this.create()
    })
  }

  get isNew(): Effect.Effect<boolean, SessionStoreError> {
    return this.withLoaded((state) => state.isNew)
  }

  get data(): Effect.Effect<Session.SessionData, SessionStoreError> {
    return this.withLoaded(() => this.published().data)
  }

  // The operations with arguments are getters that return a bound function, so that a handler may
  // destructure the service (`const { get } = yield* HttpSession`) as it can any Effect service, and
  // a request pays for the closures it uses only. Not arrow fields: those are made on every request,
  // used or not (and tsx, which the benchmarks run under, wraps each in a `__name` call).
  get get(): (key: string) => Effect.Effect<Option.Option<unknown>, SessionStoreError> {
    return (key) =>
      this.withLoaded((state) => {
        const data = this.draft ?? state.data
        return Object.hasOwn(data, key) ? Option.some(data[key]) : Option.none()
      })
  }

  get set(): (key: string, value: unknown) => Effect.Effect<void, SessionStoreError> {
    return (key, value) => this.setField(key, value)
  }

  private setField(key: string, value: unknown): Effect.Effect<void, SessionStoreError> {
    return this.withLoadedEffect(() => {
      let encoded: string | undefined
      try {
        encoded = value === undefined ? undefined : JSON.stringify(value)
      } catch (cause) {
        // The cause is not kept: its message may quote the value, which may be secret.
        return Effect.fail(new SessionEncodeError({ field: key, detail: noJsonForm(cause) }))
      }
      // What is read back now is what the next request will read: the JSON form, frozen.
      if (encoded === undefined) this.remove(key)
      else setOwn(this.edit(), key, Session.deepFreeze(JSON.parse(encoded)))
      return Effect.void
    })
  }

  get unset(): (key: string) => Effect.Effect<void, SessionStoreError> {
    return (key) => this.withLoaded(() => this.remove(key))
  }

  // Operations without arguments are values, as in Effect's own services; getters, so that
  // they cost nothing until used.
  get clear(): Effect.Effect<void, SessionStoreError> {
    return this.withLoaded((state) => {
      this.draft = undefined
      this.state = RequestState.withData(state, RequestState.emptyData)
    })
  }

  get regenerate(): Effect.Effect<void, SessionStoreError> {
    return this.update(RequestState.regenerated)
  }

  // No load: deleting needs only the id from the cookie.
  get destroy(): Effect.Effect<void, SessionStoreError> {
    return Effect.sync(() => {
      this.draft = undefined
      this.state = RequestState.destroyed(this.state, Option.getOrUndefined(this.cookie())?.value)
    })
  }

  get login(): (user: string, options?: LoginOptions) => Effect.Effect<void, SessionStoreError> {
    return (user, options) =>
      options === undefined || !Object.hasOwn(options, "expire")
        ? this.update((state) => RequestState.regenerated(state, user))
        : this.changeLifetime(options.expire, user)
  }

  get setExpire(): (expire: Duration.DurationInput | undefined) => Effect.Effect<void, SessionStoreError> {
    return (expire) => this.changeLifetime(expire, undefined)
  }

  /** `setExpire`, or with `user`, `login` with a lifetime: the lifetime is checked before anything else. */
  private changeLifetime(
    input: Duration.DurationInput | undefined,
    user: string | undefined
  ): Effect.Effect<void, SessionStoreError> {
    const millis = Session.lifetimeMillis(input)
    if (Either.isLeft(millis)) return Effect.fail(millis.left)
    const expire = millis.right === undefined ? undefined : Duration.millis(millis.right)
    return this.update((state) =>
      RequestState.withExpire(user === undefined ? state : RequestState.regenerated(state, user), expire)
    )
  }

  get user(): Effect.Effect<Option.Option<string>, SessionStoreError> {
    return this.withLoaded((state) => Option.fromNullable(RequestState.userOf(state)))
  }

  get sessions(): Effect.Effect<ReadonlyArray<HttpSessionInfo>, SessionStoreError> {
    return this.withLoadedEffect((state) => {
      const user = RequestState.userOf(state)
      if (user === undefined) return Effect.succeed([])
      const current = RequestState.storedId(state)
      return Effect.map(
        this.store.sessionsOf(user),
        (infos) => infos.map((info) => ({ ...info, current: info.id === current }))
      )
    })
  }

  get signOutEverywhere(): Effect.Effect<number, SessionStoreError> {
    return this.withLoadedEffect((state) => {
      const user = RequestState.userOf(state)
      if (user === undefined) return Effect.succeed(0)
      return Effect.map(this.store.destroyAll(user), (count) => {
        // Already deleted with the others: the commit's DEL of it finds nothing, which is harmless.
        this.draft = undefined
        this.state = RequestState.destroyed(this.state, undefined)
        return count
      })
    })
  }

  get signOutOthers(): Effect.Effect<number, SessionStoreError> {
    return this.withLoadedEffect((state) => {
      const user = RequestState.userOf(state)
      if (user === undefined) return Effect.succeed(0)
      return this.store.destroyAll(user, { except: RequestState.storedId(state) })
    })
  }

  /** Saves a session that exists only in this request, so that its id is real. */
  private create(): Effect.Effect<string, SessionStoreError> {
    return this.creating ??= singleFlight(Effect.suspend(() => {
      const state = this.published()
      const stored = RequestState.storedId(state)
      if (stored !== undefined) return Effect.succeed(stored)
      if (state._tag === "Regenerated" && state.from !== undefined) return this.move(state, state.from)
      return Effect.map(
        this.store.create(state.data, { user: RequestState.userOf(state), expire: state.expire }),
        (session) => {
          this.state = RequestState.issued(this.state as RequestState.Loaded, session)
          return session.id
        }
      )
    }))
  }

  /**
   * The id of a regenerated session, asked before the commit: the move happens now. If the session
   * was gone by then, this request's session has ended, as after `destroy`, and the id is a new one's.
   */
  private move(state: RequestState.Loaded & { readonly _tag: "Regenerated" }, from: string) {
    return Effect.flatMap(
      this.store.regenerate(
        { id: from, data: state.data, user: state.user, expire: state.expire },
        state.login ? { user: state.user } : undefined
      ),
      (moved): Effect.Effect<string, SessionStoreError> => {
        const now = this.state as RequestState.Loaded
        if (Option.isSome(moved)) {
          this.state = RequestState.issued(now, moved.value)
          return Effect.succeed(moved.value.id)
        }
        this.draft = undefined
        this.state = RequestState.destroyed(now, undefined)
        const data = (this.state as RequestState.Loaded).data
        return Effect.map(this.store.create(data), (session) => {
          this.state = RequestState.issued(this.state as RequestState.Loaded, session)
          return session.id
        })
      }
    )
  }

  // -------------------------------------------------------------------------
  // The end of the request
  // -------------------------------------------------------------------------

  /**
   * Writes what changed and decides the cookie. Runs once, after the handler. Returns `undefined`
   * when there is nothing to run, which is the case of every request that only read its session.
   */
  commit(): Effect.Effect<void, SessionStoreError> | undefined {
    if (this.committed) return undefined
    this.committed = true
    const state = this.state._tag === "Unloaded" ? this.state : this.published()
    const rolling = this.options.rolling
    if (state._tag === "Unloaded") {
      // Untouched: nothing to write, but a rolling or rotated cookie is sent again. With one secret
      // nothing can have rotated, so unless rolling needs it the signature is not even checked.
      if (!rolling && this.options.secrets.length === 1) return undefined
      const incoming = this.cookie()
      if (Option.isNone(incoming)) return undefined
      const id = incoming.value.value
      const action = RequestState.cookieFor({ _tag: "Kept", id }, incoming, true, rolling)
      if (action._tag === "None") return undefined
      // Only for a session the store still has: after a regenerate or a destroy in a parallel request,
      // the dead id must not replace the client's new cookie. The read (a cache hit, usually) slides
      // the session's lifetime as any read does, so a rolling cookie keeps its session alive too.
      // Without an explicit maxAge the cookie follows the session's own lifetime, which only the
      // stored session knows: `resend` reads it and sends nothing for a session that is gone.
      if (this.options.maxAge === undefined) return this.resend(id)
      return Effect.map(this.store.retrieve(id), (found) => {
        if (Option.isSome(found)) this.action = action
      })
    }
    const plan = RequestState.plan(state, this.options.saveUninitialized)
    if (plan.retired.length === 0 && plan.flush === undefined && plan.create === undefined) {
      const base = state._tag === "Active" ? state.base : undefined
      this.cookieSession = base
      // A read that refreshed the session's lifetime in the store: the cookie follows it.
      this.action = RequestState.cookieFor(
        plan.outcome,
        this.cookie(),
        this.raw !== undefined,
        rolling,
        base?.refreshed === true && this.options.maxAge === undefined
      )
      return undefined
    }
    return this.traced ? Effect.withSpan(this.write(plan), "HttpSession.commit") : this.write(plan)
  }

  /** An untouched session's cookie, sent again (rolling, or re-signed) with the session's own lifetime. */
  private resend(id: string): Effect.Effect<void, SessionStoreError> {
    return Effect.flatten(this.load((state) => {
      const base = state._tag === "Active" ? state.base : undefined
      if (base === undefined || base.id !== id) return Effect.void
      this.cookieSession = base
      this.action = RequestState.cookieFor(
        { _tag: "Kept", id },
        this.cookie(),
        true,
        this.options.rolling,
        base.refreshed === true
      )
      // A rolling cookie keeps its session alive too, though the handler never looked at it.
      return this.options.rolling ? this.store.touch(id) : Effect.void
    }))
  }

  private write(plan: RequestState.Plan): Effect.Effect<void, SessionStoreError> {
    const store = this.store
    const state = this.state
    const base = state._tag === "Active" ? state.base : undefined
    this.cookieSession = plan.flush ?? base
    // A flush refreshes the session's lifetime in the store: without an explicit maxAge the cookie
    // follows it, as it follows a read that refreshed it. (Were it not sent, an active user whose
    // requests all write would keep moving the session's end while the cookie's stayed put.)
    const follows = this.options.maxAge === undefined
    const flush = plan.flush !== undefined &&
      (Session.hasChanges(plan.flush) || RequestState.changesLifetime(plan.flush))
    const refreshed = follows && (flush || base?.refreshed === true)
    const save: Effect.Effect<RequestState.Outcome, SessionStoreError> = plan.create !== undefined
      ? plan.from !== undefined
        // A regenerate: one move in the store. Gone meanwhile (destroyed, revoked, expired), the
        // session has ended for this request too: it is not brought back under a new id.
        ? Effect.map(
          store.regenerate(
            { id: plan.from, data: plan.create, user: plan.user, expire: plan.expire },
            plan.login ? { user: plan.user } : undefined
          ),
          (moved): RequestState.Outcome => {
            if (Option.isNone(moved)) return { _tag: "Ended" }
            this.cookieSession = moved.value
            return { _tag: "Issued", id: moved.value.id }
          }
        )
        : Effect.map(
          store.create(plan.create, { user: plan.user, expire: plan.expire }),
          (session): RequestState.Outcome => {
            this.cookieSession = session
            return { _tag: "Issued", id: session.id }
          }
        )
      : flush
      ? Effect.as(store.flush(plan.flush!), plan.outcome)
      : Effect.succeed(plan.outcome)
    const writes = plan.retired.length === 0
      ? save
      : Effect.zipRight(Effect.forEach(plan.retired, (id) => store.destroy(id), { discard: true }), save)
    return Effect.map(writes, (outcome) => {
      this.action = RequestState.cookieFor(
        outcome,
        this.cookie(),
        this.raw !== undefined,
        this.options.rolling,
        refreshed
      )
    })
  }

  /**
   * The pre-response handler: puts the cookie on the final response, whether the app succeeded or
   * its error was turned into a response.
   */
  respond(
    request: HttpServerRequest.HttpServerRequest,
    response: HttpServerResponse.HttpServerResponse
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    // Not committed yet means the middleware was passed to `serve` and runs around the sending of
    // the response: commit here, or the cookie is lost.
    if (!this.committed) {
      const work = this.commit()
      if (work !== undefined) return Effect.flatMap(Effect.orDie(work), () => this.reply(request, response))
    }
    return this.reply(request, response)
  }

  /**
   * The response to hand to the server: with its cookie, or, when the client has already hung up,
   * an empty one. @effect/platform-node writes a response in an uninterruptible region (so the commit
   * above rides through the client's abort, up to `commandTimeout` against a stalled Redis), then
   * waits for `res.end`'s callback, which Node never calls once the socket is destroyed: the request's
   * fiber, and everything it holds, stayed for good. An empty body is ended without that wait.
   */
  private reply(
    request: HttpServerRequest.HttpServerRequest,
    response: HttpServerResponse.HttpServerResponse
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    return isGone(request)
      ? Effect.succeed(HttpServerResponse.empty({ status: 499 }))
      : this.withCookie(request, response)
  }

  private withCookie(
    request: HttpServerRequest.HttpServerRequest,
    response: HttpServerResponse.HttpServerResponse
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    const action = this.action
    if (action._tag === "None") return Effect.succeed(response)
    const options = this.options
    const attributes = {
      path: options.path,
      domain: options.domain,
      httpOnly: options.httpOnly,
      secure: options.secure === "auto" ? isHttps(request, options.trustProxy) : options.secure,
      sameSite: options.sameSite
    }
    if (action._tag === "Expire") {
      return Effect.succeed(HttpServerResponse.expireCookie(response, options.name, attributes))
    }
    if (options.maxAge !== undefined) {
      return this.setCookie(response, action.id, attributes, options.maxAge ?? undefined)
    }
    // The cookie follows the session's lifetime: its own, or the store's, never past the absolute
    // deadline (which needs the time, so it costs an effect only with `absoluteExpire`).
    const session = this.cookieSession
    const lifetime = session?.expire ?? this.store.expire
    const absolute = this.store.absoluteExpire
    const createdAt = session?.createdAt
    if (absolute === undefined || createdAt === undefined) {
      return this.setCookie(response, action.id, attributes, lifetime)
    }
    return Effect.flatMap(Clock.currentTimeMillis, (now) =>
      this.setCookie(
        response,
        action.id,
        attributes,
        Duration.millis(
          Math.max(0, Math.min(Duration.toMillis(lifetime), createdAt + Duration.toMillis(absolute) - now))
        )
      ))
  }

  private setCookie(
    response: HttpServerResponse.HttpServerResponse,
    id: string,
    attributes: Cookies.Cookie["options"],
    maxAge: Duration.Duration | undefined
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    // The name, domain and path were checked when the options were decoded and the value is
    // base64url, so this cannot fail.
    return Effect.orDie(HttpServerResponse.setCookie(response, this.options.name, this.signed(id), {
      ...attributes,
      maxAge: maxAge !== undefined && Duration.isFinite(maxAge) ? maxAge : undefined
    }))
  }

  /** The signed cookie value for `id`: the incoming one when it is current, so no HMAC is needed. */
  private signed(id: string): string {
    const incoming = this.incoming
    return incoming !== undefined && Option.isSome(incoming) && incoming.value.value === id &&
        !incoming.value.rotated && this.raw !== undefined
      ? this.raw
      : this.signer.sign(id)
  }
}

/**
 * Runs `effect` once at a time: a caller that arrives while it runs waits for
 * the same outcome instead of starting it again.
 */
const singleFlight = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  let running = false
  // Made only when a second caller actually has to wait.
  let waiters: Deferred.Deferred<A, E> | undefined
  return Effect.suspend(() => {
    if (running) return Deferred.await(waiters ??= Deferred.unsafeMake<A, E>(FiberId.none))
    running = true
    return Effect.onExit(effect, (exit) => {
      running = false
      const waiting = waiters
      waiters = undefined
      return waiting === undefined ? Effect.void : Deferred.done(waiting, exit)
    })
  })
}

// Keys come from handlers: "__proto__" must stay an ordinary own key, never become a prototype.
const setOwn = (record: Record<string, unknown>, key: string, value: unknown): void => {
  if (key === "__proto__") {
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
  } else {
    record[key] = value
  }
}

const noJsonForm = (cause: unknown): string =>
  cause instanceof TypeError && /circular/i.test(cause.message)
    ? "the value has no JSON form (a cycle)"
    : cause instanceof TypeError && /bigint/i.test(cause.message)
    ? "the value has no JSON form (a bigint)"
    : "the value has no JSON form (its toJSON failed)"

/** Whether the client has hung up: its Node socket is closed or no longer writable, or its web request aborted. */
const isGone = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const source = request.source
  if (Predicate.hasProperty(source, "socket")) {
    const socket = source.socket
    return Predicate.hasProperty(socket, "destroyed") && Predicate.hasProperty(socket, "writable") &&
      (socket.destroyed === true || socket.writable === false)
  }
  return typeof Request !== "undefined" && source instanceof Request && source.signal.aborted
}

const isHttps = (request: HttpServerRequest.HttpServerRequest, trustProxy: boolean): boolean => {
  if (trustProxy) {
    const forwarded = request.headers["x-forwarded-proto"]
    if (forwarded !== undefined) return forwarded.split(",")[0]!.trim().toLowerCase() === "https"
  }
  const source = request.source
  if (typeof Request !== "undefined" && source instanceof Request) return source.url.startsWith("https:")
  // Node's IncomingMessage: a TLS socket says so.
  return Predicate.hasProperty(source, "socket") && Predicate.hasProperty(source.socket, "encrypted") &&
    source.socket.encrypted === true
}
