/**
 * Sessions for @effect/platform HTTP apps: a middleware that keeps the session
 * id in a signed cookie, and a per-request service that handlers yield to
 * read and change their session. The session is loaded on the handler's first
 * access and only its changed fields are written, at the end of the request.
 *
 * @since 0.1.0
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as InternalSchema from "./internal/schema.js"
import * as Tracing from "./internal/tracing.js"
import * as Session from "./Session.js"
import { type SessionConfigError } from "./SessionConfig.js"
import * as SessionCookie from "./SessionCookie.js"
import type { SessionStoreError } from "./SessionError.js"
import { SessionStore } from "./SessionStore.js"

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const CookieName = Schema.String.pipe(
  Schema.filter((s) => /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s), {
    message: (issue) =>
      `Expected a cookie name (letters, digits and !#$%&'*+-.^_\`|~), got ${JSON.stringify(issue.actual)}`
  })
)

const CookieDomain = Schema.String.pipe(
  Schema.filter(
    (s) => /^\.?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(s),
    {
      message: (issue) => `Expected a domain name such as "example.com", got ${JSON.stringify(issue.actual)}`
    }
  )
)

const CookiePath = Schema.String.pipe(
  Schema.filter((s) => /^\/[\u0020-\u003a\u003c-\u007e]*$/.test(s), {
    message: (issue) => `Expected a path starting with "/" and without ";", got ${JSON.stringify(issue.actual)}`
  })
)

const Secret = Schema.Union(Schema.RedactedFromSelf(Schema.String), Schema.Redacted(Schema.String)).pipe(
  Schema.filter((secret) => {
    const length = Redacted.value(secret).length
    // The message gives the length only: a secret must never reach a log.
    return length >= 32 || `Expected a secret of at least 32 characters, got one of ${length}`
  })
)

const Secrets = Schema.Array(Secret).annotations({
  message: () => ({ message: "Expected a list of secrets (strings or Redacted strings)", override: false })
}).pipe(
  Schema.filter(Arr.isNonEmptyReadonlyArray, { message: () => "Expected at least one secret" })
)

const maxAgeExpected =
  "Expected null (a browser-session cookie) or a duration of at least 1 second: a number of seconds, or a string such as \"1 hour\""

const MaxAge = Schema.Union(
  Schema.Null,
  InternalSchema.durationInput("seconds", { minMillis: 1000, expected: maxAgeExpected })
).annotations({ message: (issue) => ({ message: `${maxAgeExpected}, got ${String(issue.actual)}`, override: true }) })

/**
 * The middleware's options. Only `secrets` is required.
 *
 * - `name`: the cookie name (default `"sid"`).
 * - `secrets`: the signing secrets, each at least 32 characters; the first signs, all verify. A string is wrapped in `Redacted`.
 * - `domain`, `path` (default `"/"`): the cookie's scope.
 * - `maxAge`: the cookie lifetime (a number means seconds; default: the store's `expire`); `null` makes a browser-session cookie.
 * - `httpOnly` (default true), `sameSite` (`"lax"` by default, `"strict"` or `"none"`).
 * - `secure`: true, false, or `"auto"` (the default): Secure when the request came over https.
 * - `trustProxy`: let `X-Forwarded-Proto` say whether the request came over https (default false).
 * - `rolling`: send the cookie on every response, renewing its lifetime (default false).
 * - `saveUninitialized`: save a new session that the handler read but did not change (default false).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Options = Schema.Struct({
  name: Schema.optionalWith(CookieName, { default: () => "sid" }),
  secrets: Secrets,
  domain: Schema.optional(CookieDomain),
  path: Schema.optionalWith(CookiePath, { default: () => "/" }),
  maxAge: Schema.optional(MaxAge),
  httpOnly: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  secure: Schema.optionalWith(Schema.Union(Schema.Boolean, Schema.Literal("auto")), { default: () => "auto" as const }),
  trustProxy: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  sameSite: Schema.optionalWith(Schema.Literal("lax", "strict", "none"), { default: () => "lax" as const }),
  rolling: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  saveUninitialized: Schema.optionalWith(Schema.Boolean, { default: () => false })
}).pipe(
  Schema.filter((o) => {
    // Browsers drop these cookies outright; better to say so at startup.
    if (o.sameSite === "none" && o.secure === false) {
      return {
        path: ["sameSite"],
        message: "sameSite \"none\" requires a Secure cookie: set secure to true or \"auto\""
      }
    }
    if ((o.name.startsWith("__Secure-") || o.name.startsWith("__Host-")) && o.secure === false) {
      return { path: ["secure"], message: `A cookie named "${o.name}" must be Secure` }
    }
    if (o.name.startsWith("__Host-") && (o.path !== "/" || o.domain !== undefined)) {
      return {
        path: [o.domain !== undefined ? "domain" : "path"],
        message: "A __Host- cookie must have path \"/\" and no domain"
      }
    }
    return true
  })
)

/**
 * The decoded options.
 *
 * @since 0.1.0
 * @category models
 */
export type Options = typeof Options.Type

/**
 * The options as a user writes them. Decoded options are accepted too.
 *
 * @since 0.1.0
 * @category models
 */
export type Input = typeof Options.Encoded

const decodeInput = InternalSchema.decoder(Options, "option")

/**
 * Decodes the middleware's options. Fails with a `SessionConfigError` that
 * names the first rejected option; an unknown key is rejected too.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decodeOptions = (input: unknown): Effect.Effect<Options, SessionConfigError> =>
  Either.match(decodeInput(input), { onLeft: Effect.fail, onRight: Effect.succeed })

const configKeys = {
  name: "NAME",
  secrets: "SECRETS",
  domain: "DOMAIN",
  path: "PATH",
  maxAge: "MAX_AGE",
  httpOnly: "HTTP_ONLY",
  secure: "SECURE",
  trustProxy: "TRUST_PROXY",
  sameSite: "SAME_SITE",
  rolling: "ROLLING",
  saveUninitialized: "SAVE_UNINITIALIZED"
} as const

/**
 * Reads the options through Effect `Config` under `prefix` (default
 * `HTTP_SESSION`): `HTTP_SESSION_SECRETS` (comma-separated, first signs),
 * `_NAME`, `_DOMAIN`, `_PATH`, `_MAX_AGE` (seconds, a duration such as
 * `"1 hour"`, or `"session"` for a browser-session cookie), `_HTTP_ONLY`,
 * `_SECURE` (`true`, `false` or `auto`), `_TRUST_PROXY`, `_SAME_SITE`,
 * `_ROLLING`, `_SAVE_UNINITIALIZED`. A rejected value fails with a
 * `ConfigError` that names the variable.
 *
 * @since 0.1.0
 * @category config
 */
export const configWithPrefix = (prefix: string = "HTTP_SESSION"): Config.Config<Options> => {
  const text = (key: string) => Config.option(Config.string(key))
  const flag = (key: string) => Config.option(Config.boolean(key))
  return Config.all({
    secrets: Config.array(Config.redacted(), configKeys.secrets),
    name: text(configKeys.name),
    domain: text(configKeys.domain),
    path: text(configKeys.path),
    maxAge: text(configKeys.maxAge),
    httpOnly: flag(configKeys.httpOnly),
    secure: text(configKeys.secure),
    trustProxy: flag(configKeys.trustProxy),
    sameSite: text(configKeys.sameSite),
    rolling: flag(configKeys.rolling),
    saveUninitialized: flag(configKeys.saveUninitialized)
  }).pipe(
    Config.mapOrFail(({ maxAge, secure, ...rest }) => {
      const input: Record<string, unknown> = {}
      const entries: ReadonlyArray<readonly [string, unknown]> = Object.entries(rest)
      for (const [key, value] of entries) {
        if (!Option.isOption(value)) input[key] = value
        else if (Option.isSome(value)) input[key] = value.value
      }
      if (Option.isSome(maxAge)) input.maxAge = maxAge.value.trim() === "session" ? null : maxAge.value
      if (Option.isSome(secure)) {
        const s = secure.value.trim().toLowerCase()
        input.secure = s === "true" ? true : s === "false" ? false : s
      }
      return Either.mapLeft(decodeInput(input), ({ detail, field }) => {
        const head = field.split(".")[0] as keyof typeof configKeys
        return ConfigError.InvalidData([configKeys[head] ?? field.toUpperCase()], detail)
      })
    }),
    Config.nested(prefix)
  )
}

/**
 * The options read from the environment under `HTTP_SESSION_*`; see
 * {@link configWithPrefix}.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = configWithPrefix()

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/**
 * A stored session field does not decode with the app's schema (see
 * {@link typed}): it was written by an older version of the app, or by hand.
 * The field is named; the stored value is not kept, since it may be secret.
 *
 * @since 0.1.0
 * @category errors
 */
export class HttpSessionDecodeError extends Schema.TaggedError<HttpSessionDecodeError>(
  "effect-session-redis/HttpSessionDecodeError"
)("HttpSessionDecodeError", {
  field: Schema.String,
  expected: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Session field "${this.field}" does not decode as ${this.expected}`
  }
}

/**
 * A value could not be stored in the session: it failed the app's schema
 * (see {@link typed}), or it has no JSON form (a `bigint`, a cycle).
 *
 * @since 0.1.0
 * @category errors
 */
export class HttpSessionEncodeError extends Schema.TaggedError<HttpSessionEncodeError>(
  "effect-session-redis/HttpSessionEncodeError"
)("HttpSessionEncodeError", {
  field: Schema.String,
  detail: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Session field "${this.field}" could not be stored: ${this.detail}`
  }
}

// ---------------------------------------------------------------------------
// The per-request service
// ---------------------------------------------------------------------------

/**
 * A request's session. The first operation loads it from the store (one read);
 * changes are kept in memory and written when the response is ready, so every
 * operation that may load can fail with the store's typed error.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The session id. Reading the id of a new session saves it now, so that the id exists in the store. */
  readonly id: Effect.Effect<string, SessionStoreError>
  /** True when the request carried no session that the store knew. */
  readonly isNew: Effect.Effect<boolean, SessionStoreError>
  /** All fields, as JSON values (frozen). */
  readonly data: Effect.Effect<Session.SessionData, SessionStoreError>
  /** One field; `None` when absent. */
  readonly get: (key: string) => Effect.Effect<Option.Option<unknown>, SessionStoreError>
  /** Sets a field to a JSON value; `undefined` removes it. Fails when the value has no JSON form. */
  readonly set: (key: string, value: unknown) => Effect.Effect<void, SessionStoreError | HttpSessionEncodeError>
  /** Removes a field. */
  readonly unset: (key: string) => Effect.Effect<void, SessionStoreError>
  /** Removes every field; the session itself stays. */
  readonly clear: () => Effect.Effect<void, SessionStoreError>
  /** Moves the data to a new id and deletes the old one: call it on login, against session fixation. */
  readonly regenerate: () => Effect.Effect<void, SessionStoreError>
  /** Deletes the session and expires the cookie. Later changes in this request start a new session. */
  readonly destroy: () => Effect.Effect<void, SessionStoreError>
}

/**
 * The current request's session, provided by {@link middleware}.
 *
 * @since 0.1.0
 * @category tags
 */
export class HttpSession extends Context.Tag("effect-session-redis/HttpSession")<HttpSession, Service>() {}

type CookieAction =
  | { readonly _tag: "None" }
  | { readonly _tag: "Set"; readonly id: string }
  | { readonly _tag: "Expire" }

const noAction: CookieAction = { _tag: "None" }

/** A signed session id is 43 + 1 + 43 characters; anything much longer is not worth hashing. */
const maxCookieLength = 128

/**
 * Runs `effect` once at a time: a caller that arrives while it runs waits for
 * the same outcome instead of starting it again. Far cheaper per request than
 * a semaphore, and that is all that concurrent fibers of one request need.
 */
const singleFlight = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  let running = false
  // Made only when a second caller actually has to wait: most requests never need it.
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

/** The state of one request's session. Every change after the load is synchronous, hence atomic. */
const makeRequestSession = (
  options: Options,
  signer: SessionCookie.Signer,
  store: SessionStore["Type"],
  request: HttpServerRequest.HttpServerRequest
) => {
  // `request.cookies` is typed as a full record, but the name may be absent
  // or an inherited key such as "constructor".
  const raw = Object.hasOwn(request.cookies, options.name) ? request.cookies[options.name] : undefined
  let verified: Option.Option<SessionCookie.Verified> | undefined
  const cookie = (): Option.Option<SessionCookie.Verified> =>
    verified ??= typeof raw === "string" && raw.length <= maxCookieLength
      ? Option.filter(signer.verify(raw), (v) => Session.isId(v.value))
      : Option.none()

  let loaded = false
  let isNew = true
  /** The stored session the data is based on; undefined while it exists only here. */
  let base: Session.Session | undefined
  let data: Session.SessionData = emptyData
  /** Sessions to delete at commit: the one left by `regenerate` or `destroy`. */
  const obsolete = new Set<string>()
  let createdHere = false
  let mustSave = false
  let destroyed = false
  let committed = false
  let action: CookieAction = noAction

  const load = singleFlight(Effect.suspend(() => {
    if (loaded) return Effect.void
    const verified = cookie()
    if (Option.isNone(verified)) return Effect.sync(() => void (loaded = true))
    return Effect.map(store.retrieve(verified.value.value), (found) => {
      // A destroy() that ran meanwhile wins.
      if (loaded) return
      loaded = true
      if (Option.isSome(found)) {
        base = found.value
        data = found.value.data
        isNew = false
      }
    }).pipe(Tracing.span("HttpSession.load"))
  }))

  const locked = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.suspend(() => loaded ? effect : Effect.zipRight(load, effect))

  const create = singleFlight(
    Effect.suspend(() =>
      base !== undefined ? Effect.succeed(base.id) : Effect.map(store.create(data), (session) => {
        base = session
        data = session.data
        createdHere = true
        return session.id
      })
    )
  )

  const service: Service = {
    id: locked(Effect.suspend(() => base !== undefined ? Effect.succeed(base.id) : create)),
    isNew: locked(Effect.sync(() => isNew)),
    data: locked(Effect.sync(() => data)),
    get: (key) => locked(Effect.sync(() => Object.hasOwn(data, key) ? Option.some(data[key]) : Option.none())),
    set: (key, value) =>
      locked(Effect.suspend(() => {
        let encoded: string | undefined
        try {
          encoded = value === undefined ? undefined : JSON.stringify(value)
        } catch (cause) {
          return Effect.fail(new HttpSessionEncodeError({ field: key, detail: describe(cause) }))
        }
        // What is read back now is what the next request will read: the JSON form, frozen.
        data = encoded === undefined
          ? omit(data, key)
          : Object.freeze({ ...data, [key]: Session.deepFreeze(JSON.parse(encoded)) })
        return Effect.void
      })),
    unset: (key) => locked(Effect.sync(() => void (data = omit(data, key)))),
    clear: () => locked(Effect.sync(() => void (data = emptyData))),
    regenerate: () =>
      locked(Effect.sync(() => {
        if (base !== undefined) obsolete.add(base.id)
        base = undefined
        mustSave = true
      })),
    // No load: deleting needs only the id from the cookie.
    destroy: () =>
      Effect.sync(() => {
        const verified = cookie()
        if (base !== undefined) obsolete.add(base.id)
        else if (!loaded && Option.isSome(verified)) obsolete.add(verified.value.value)
        if (!loaded) isNew = Option.isNone(verified)
        loaded = true
        base = undefined
        data = emptyData
        mustSave = false
        destroyed = true
      })
  }

  /** Writes what changed and decides the cookie. Runs once, after the handler. */
  const commit: Effect.Effect<void, SessionStoreError> = Effect.suspend(() => {
    if (committed) return Effect.void
    committed = true
    if (!loaded) {
      // Untouched: nothing to write, but a rotated or rolling cookie is sent again. With one secret
      // nothing can have rotated, so the signature is not even checked unless rolling needs it.
      if (!options.rolling && options.secrets.length === 1) return Effect.void
      const verified = cookie()
      if (Option.isNone(verified) || !(options.rolling || verified.value.rotated)) return Effect.void
      const id = verified.value.value
      return Effect.map(options.rolling ? store.touch(id) : Effect.void, () => void (action = { _tag: "Set", id }))
    }
    const verified = cookie()
    // The common case, a request that only read its session: nothing to write, no Effect to run.
    if (obsolete.size === 0 && base !== undefined && data === base.data) {
      const resign = Option.isSome(verified) && verified.value.rotated && verified.value.value === base.id
      action = createdHere || options.rolling || resign ? { _tag: "Set", id: base.id } : noAction
      return Effect.void
    }
    return Effect.gen(function*() {
      // Deleted first, so that a failure later never leaves two live copies of the data.
      for (const id of obsolete) yield* store.destroy(id)
      if (base !== undefined) {
        // Untouched data keeps its identity: no need to compare it field by field.
        if (data !== base.data) {
          const next: Session.Session = { ...base, data }
          if (!Session.isEmpty(Session.diff(next))) yield* store.flush(next)
        }
        const resign = Option.isSome(verified) && verified.value.rotated && verified.value.value === base.id
        action = createdHere || options.rolling || resign ? { _tag: "Set", id: base.id } : noAction
      } else if (mustSave || hasFields(data) || (options.saveUninitialized && !destroyed)) {
        action = { _tag: "Set", id: yield* create }
      } else {
        action = destroyed && raw !== undefined ? { _tag: "Expire" } : noAction
      }
    }).pipe(Tracing.span("HttpSession.commit"))
  })

  const respond = (
    request: HttpServerRequest.HttpServerRequest,
    response: HttpServerResponse.HttpServerResponse
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    // Not committed yet means the middleware was passed to `serve` and runs
    // around the sending of the response: commit here, or the cookie is lost.
    const misplaced = committed ? Effect.void : Effect.orDie(commit)
    return Effect.flatMap(misplaced, () => applyCookie(options, store, signer, action, request, response))
  }

  return { service, commit, respond } as const
}

const emptyData: Session.SessionData = Object.freeze({})

const hasFields = (data: Session.SessionData): boolean => {
  for (const _ in data) return true
  return false
}

const omit = (data: Session.SessionData, key: string): Session.SessionData => {
  if (!Object.hasOwn(data, key)) return data
  const { [key]: _, ...rest } = data
  return Object.freeze(rest)
}

const describe = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

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

const applyCookie = (
  options: Options,
  store: SessionStore["Type"],
  signer: SessionCookie.Signer,
  action: CookieAction,
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  if (action._tag === "None") return Effect.succeed(response)
  const attributes = {
    path: options.path,
    domain: options.domain,
    httpOnly: options.httpOnly,
    secure: options.secure === "auto" ? isHttps(request, options.trustProxy) : options.secure,
    sameSite: options.sameSite
  }
  if (action._tag === "Expire") {
    return Effect.succeed(response.pipe(HttpServerResponse.expireCookie(options.name, attributes)))
  }
  const maxAge = options.maxAge === undefined ? store.expire : options.maxAge ?? undefined
  // The name, domain and path were checked when the options were decoded and
  // the value is base64url, so this cannot fail.
  return Effect.orDie(HttpServerResponse.setCookie(response, options.name, signer.sign(action.id), {
    ...attributes,
    maxAge: maxAge !== undefined && Duration.isFinite(maxAge) ? maxAge : undefined
  }))
}

// ---------------------------------------------------------------------------
// The middleware
// ---------------------------------------------------------------------------

/**
 * What {@link middleware} makes: it provides {@link HttpSession} to the app
 * and needs a `SessionStore`. The store's errors from the end-of-request write
 * join the app's error channel, so map them after applying the middleware.
 *
 * @since 0.1.0
 * @category models
 */
export interface Middleware {
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E | SessionStoreError, Exclude<R, HttpSession> | SessionStore>
}

/**
 * Makes the session middleware from its options. Fails with a
 * `SessionConfigError` naming the rejected option, so a bad option stops the
 * app at startup instead of failing requests.
 *
 * Apply it to the app or router (`router.pipe(session)`), not as the second
 * argument of `HttpServer.serve`, which runs after the response is sent.
 *
 * @since 0.1.0
 * @category constructors
 */
export const middleware = (options: Input): Effect.Effect<Middleware, SessionConfigError> =>
  Effect.map(decodeOptions(options), make)

/**
 * Makes the middleware from decoded options.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Middleware => {
  const signer = SessionCookie.make(options.secrets)
  // Written with plain combinators rather than Effect.gen: this runs on every request.
  return <E, R>(app: HttpApp.Default<E, R>) =>
    Effect.contextWithEffect((context: Context.Context<HttpServerRequest.HttpServerRequest | SessionStore>) => {
      const session = makeRequestSession(
        options,
        signer,
        Context.get(context, SessionStore),
        Context.get(context, HttpServerRequest.HttpServerRequest)
      )
      // The pre-response handler runs on the final response, whether the app succeeded or its
      // error was turned into a response, so the cookie is never lost.
      return Effect.zipRight(
        HttpApp.appendPreResponseHandler(session.respond),
        Effect.matchCauseEffect(Effect.provideService(app, HttpSession, session.service), {
          onFailure: (cause) =>
            Effect.matchCauseEffect(session.commit, {
              onFailure: (committed) => Effect.failCause(Cause.sequential(cause, committed)),
              onSuccess: () => Effect.failCause(cause)
            }),
          onSuccess: (response) => Effect.as(session.commit, response)
        })
      )
    }) as HttpApp.Default<E | SessionStoreError, Exclude<R, HttpSession> | SessionStore>
}

// ---------------------------------------------------------------------------
// Typed session data
// ---------------------------------------------------------------------------

/**
 * Typed access to the session through a Schema of its fields: reads decode,
 * writes encode. Each field is decoded on its own, so one stale field fails
 * only the reads of that field, with an {@link HttpSessionDecodeError}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Typed<A, R> {
  /** A field, decoded; `None` when absent (a field with a default decodes to its default). */
  readonly get: <K extends keyof A & string>(
    key: K
  ) => Effect.Effect<
    Option.Option<Exclude<A[K], undefined>>,
    SessionStoreError | HttpSessionDecodeError,
    HttpSession | R
  >
  /** Encodes and sets a field; `undefined` (for an optional field) removes it. */
  readonly set: <K extends keyof A & string>(
    key: K,
    value: A[K]
  ) => Effect.Effect<void, SessionStoreError | HttpSessionEncodeError, HttpSession | R>
  /** Sets a field from its current value, and returns the new value. */
  readonly modify: <K extends keyof A & string>(
    key: K,
    f: (current: Option.Option<Exclude<A[K], undefined>>) => A[K]
  ) => Effect.Effect<A[K], SessionStoreError | HttpSessionDecodeError | HttpSessionEncodeError, HttpSession | R>
  /** Removes a field. */
  readonly unset: <K extends keyof A & string>(key: K) => Effect.Effect<void, SessionStoreError, HttpSession>
  /** Every declared field that is present (or has a default), decoded. Undeclared fields are left out. */
  readonly data: Effect.Effect<Partial<A>, SessionStoreError | HttpSessionDecodeError, HttpSession | R>
}

/**
 * Declares the session's fields with a Schema and returns typed accessors.
 *
 * ```ts
 * const AppSession = HttpSession.typed(Schema.Struct({
 *   visits: Schema.optionalWith(Schema.Number, { default: () => 0 }),
 *   user: Schema.optional(Schema.String)
 * }))
 * const visits = yield* AppSession.modify("visits", (n) => Option.getOrElse(n, () => 0) + 1)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const typed = <Fields extends Schema.Struct.Fields>(
  schema: Schema.Struct<Fields>
): Typed<Schema.Struct.Type<Fields>, Schema.Struct.Context<Fields>> => {
  type A = Schema.Struct.Type<Fields>
  type R = Schema.Struct.Context<Fields>
  interface Codec {
    readonly expected: string
    readonly decode: (u: unknown) => Effect.Effect<Record<string, unknown>, ParseResult.ParseError, R>
    readonly encode: (a: unknown) => Effect.Effect<Record<string, unknown>, ParseResult.ParseError, R>
  }
  const codecs = new Map<string, Codec>()
  const codec = (key: string): Codec => {
    let found = codecs.get(key)
    if (found === undefined) {
      const one = Schema.Struct({ [key]: schema.fields[key]! })
      const decode = Schema.decodeUnknown(one)
      const encode = Schema.encodeUnknown(one)
      found = {
        expected: String(Schema.typeSchema(one).ast),
        decode: (u) => decode(u) as Effect.Effect<Record<string, unknown>, ParseResult.ParseError, R>,
        encode: (a) => encode(a) as Effect.Effect<Record<string, unknown>, ParseResult.ParseError, R>
      }
      codecs.set(key, found)
    }
    return found
  }

  const decodeField = (key: string, stored: Option.Option<unknown>) => {
    const c = codec(key)
    const field = (out: Record<string, unknown>) => Object.hasOwn(out, key) ? Option.some(out[key]) : Option.none()
    return Option.match(stored, {
      // Absent: the field's default if it has one, else None (a required field may be missing in a new session).
      onNone: () => Effect.orElseSucceed(Effect.map(c.decode({}), field), Option.none),
      onSome: (value) =>
        Effect.mapError(
          Effect.map(c.decode({ [key]: value }), field),
          () => new HttpSessionDecodeError({ field: key, expected: c.expected })
        )
    })
  }

  const get = <K extends keyof A & string>(key: K) =>
    Effect.flatMap(
      HttpSession,
      (session) => Effect.flatMap(session.get(key), (stored) => decodeField(key, stored))
    ) as Effect.Effect<
      Option.Option<Exclude<A[K], undefined>>,
      SessionStoreError | HttpSessionDecodeError,
      HttpSession | R
    >

  const set = <K extends keyof A & string>(key: K, value: A[K]) =>
    Effect.flatMap(HttpSession, (session) =>
      codec(key).encode({ [key]: value }).pipe(
        // The value is left out of the error: it may be secret.
        Effect.mapError(() => new HttpSessionEncodeError({ field: key, detail: `expected ${codec(key).expected}` })),
        Effect.flatMap((encoded) => session.set(key, encoded[key]))
      ))

  return {
    get,
    set,
    modify: (key, f) =>
      Effect.flatMap(get(key), (current) => {
        const next = f(current)
        return Effect.as(set(key, next), next)
      }),
    unset: (key) => Effect.flatMap(HttpSession, (session) => session.unset(key)),
    data: Effect.flatMap(
      HttpSession,
      (session) =>
        Effect.flatMap(
          session.data,
          (stored) =>
            Effect.reduce(Object.keys(schema.fields), {} as Record<string, unknown>, (out, key) =>
              Effect.map(
                decodeField(key, Object.hasOwn(stored, key) ? Option.some(stored[key]) : Option.none()),
                (value) => {
                  if (Option.isSome(value)) out[key] = value.value
                  return out
                }
              ))
        )
    ) as Effect.Effect<Partial<A>, SessionStoreError | HttpSessionDecodeError, HttpSession | R>
  }
}
