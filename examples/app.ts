/**
 * The demo app: a visit counter with login and logout, on the session
 * middleware. `examples/demo.ts` runs it; the tests serve the same app.
 *
 * Routes (the demo's contract):
 * - `GET /` → `{"visits": n, "user": name | null}`; each call counts a visit.
 * - `POST /login` with `{"name": "...", "remember": true | false}` → a new session id, the user stored;
 *   with `remember` the session lives {@link rememberFor} from the last request (the cookie's Max-Age says
 *   so too), otherwise the store's `expire`.
 * - `POST /logout` → the session destroyed, the cookie expired.
 * - `GET /health` → `{"store": "redis" | "memory", "redis": "up" | "down" | null}`.
 * - `GET /sessions` → the logged-in user's sessions, `{"sessions": [{"current", "createdAt", "expiresAt",
 *   "lastActiveAt", "handle"}]}` (times in ISO 8601; `handle` is an HMAC of the id, never the id itself,
 *   which is a bearer token); anonymous: 401 `{"error": ...}`.
 * - `POST /logout-everywhere` → every session of the user revoked, this one too: `{"revoked": n}`, the
 *   cookie expired. `POST /logout-others` → every other one: `{"revoked": n}`.
 * - `POST /sessions/revoke` with `{"handle": "..."}` → that session of the user revoked: `{"revoked": 1}`,
 *   or 404.
 * - `GET /` with `Accept: text/html` → the same visit, as a small HTML page with forms for all of the
 *   above; the forms post `application/x-www-form-urlencoded` and get a 303 back to `/`.
 * - a store failure → 503 with `{"error": ...}`, or a small HTML page for a browser (`Accept: text/html`).
 *
 * The page also shows what the library did for this request: whether its session came from this
 * instance's near-cache (no Redis command) or from Redis, and the near-cache's counters.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createHmac } from "node:crypto"
import * as HttpSession from "../src/HttpSession.js"
import type * as SessionCache from "../src/SessionCache.js"
import type { SessionConfigError } from "../src/SessionConfig.js"
import type { RedisConnectionError } from "../src/SessionError.js"
import * as SessionStore from "../src/SessionStore.js"

/** The session's fields, typed: reads decode and writes encode. */
export const AppSession = HttpSession.typed(Schema.Struct({
  visits: Schema.Int,
  user: Schema.optional(Schema.String)
}))

/** How long "Remember me" keeps a user signed in after their last request. */
export const rememberFor = "30 days"

const Name = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(100))

const Login = Schema.Struct({ name: Name, remember: Schema.optional(Schema.Boolean) })

// A checked checkbox posts "on"; an unchecked one posts nothing.
const LoginForm = Schema.Struct({ name: Name, remember: Schema.optional(Schema.Literal("on")) })

const Revoke = Schema.Struct({ handle: Schema.String })

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

const visits = Effect.map(AppSession.get("visits"), Option.getOrElse(() => 0))

/** Whether the request came from one of the page's forms: it then gets a redirect back to the page. */
const isForm = Effect.map(
  HttpServerRequest.HttpServerRequest,
  (request) => (request.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded")
)

/** A JSON body, or the page's form fields, decoded by `schema`. */
const body = <A, I extends Readonly<Record<string, string | undefined>>>(schema: Schema.Schema<A, I>) =>
  Effect.flatMap(
    isForm,
    (form) => form ? HttpServerRequest.schemaBodyUrlParams(schema) : HttpServerRequest.schemaBodyJson(schema)
  )

/** The login, from the page's form or a JSON body. */
const loginBody = Effect.flatMap(isForm, (form) =>
  form
    ? Effect.map(HttpServerRequest.schemaBodyUrlParams(LoginForm), ({ name, remember }) => ({
      name,
      remember: remember === "on"
    }))
    : Effect.map(HttpServerRequest.schemaBodyJson(Login), ({ name, remember }) => ({
      name,
      remember: remember === true
    })))

const backToPage = HttpServerResponse.empty({ status: 303, headers: { location: "/" } })

/** `json(...)` for API clients, a redirect to the page for its forms. */
const reply = (value: unknown, status = 200) => Effect.map(isForm, (form) => form ? backToPage : json(value, status))

const notLoggedIn = json({ error: "not logged in" }, 401)

/**
 * The handle of a session: an HMAC of its id under the app's secret, so the
 * page can name a session to revoke without ever showing its id (a bearer
 * token). A handle proves nothing by itself: it is only looked up among the
 * current user's own sessions.
 */
export interface Handles {
  readonly of: (id: string) => string
}

const makeHandles = (secret: Redacted.Redacted<string> | string): Handles => {
  const key = createHmac("sha256", typeof secret === "string" ? secret : Redacted.value(secret))
    .update("effect-session-redis demo: revoke handles")
    .digest()
  return { of: (id) => createHmac("sha256", key).update(id).digest("base64url").slice(0, 22) }
}

const iso = (millis: number) => Number.isFinite(millis) ? new Date(millis).toISOString() : null

/** Where this request's session came from, for the page. */
type Source = "near-cache" | "redis" | "memory" | "new"

const readSource = FiberRef.unsafeMake<Source>("new")

/**
 * The store as the demo uses it: each read also records, for the request's fiber, whether the
 * near-cache answered it. A miss always counts one more miss in the cache's own counters, and a hit
 * counts none, so comparing them before and after the read tells, whatever other requests do meanwhile.
 */
const observed = (store: SessionStore.SessionStore): SessionStore.SessionStore => ({
  ...store,
  retrieve: (id) =>
    Effect.flatMap(
      store.cacheStats,
      (before) =>
        Effect.tap(store.retrieve(id), (found) =>
          Effect.flatMap(store.cacheStats, (after) =>
            FiberRef.set(
              readSource,
              Option.isNone(found)
                ? "new"
                : store.backend === "memory"
                ? "memory"
                : after.misses > before.misses
                ? "redis"
                : "near-cache"
            )))
    )
})
const observedStores = new WeakMap<SessionStore.SessionStore, SessionStore.SessionStore>()
const observe = (store: SessionStore.SessionStore): SessionStore.SessionStore => {
  let found = observedStores.get(store)
  if (found === undefined) observedStores.set(store, found = observed(store))
  return found
}

const sourceText: Record<Source, string> = {
  "near-cache": "this instance's near-cache: no Redis command",
  redis: "Redis (a near-cache miss; the next read of it is a hit)",
  memory: "the in-memory store (no Redis, no near-cache)",
  new: "nowhere: this is a new session"
}

// Times as a person reads them: the demo's own local time (it runs on your machine), and how long ago.
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" })
const ago = (millis: number, now: number) => {
  const seconds = Math.round((millis - now) / 1000)
  const [value, unit] = Math.abs(seconds) < 90
    ? [seconds, "s"]
    : Math.abs(seconds) < 5400
    ? [Math.round(seconds / 60), "min"]
    : [Math.round(seconds / 3600), "h"]
  return value === 0 ? "now" : value < 0 ? `${-value} ${unit} ago` : `in ${value} ${unit}`
}
const when = (isoTime: string | null, now: number) => {
  const millis = isoTime === null ? NaN : Date.parse(isoTime)
  return Number.isFinite(millis)
    ? `<time datetime="${isoTime}">${escapeHtml(timeFormat.format(millis))} (${ago(millis, now)})</time>`
    : ""
}

/** The user's sessions as the API and the page show them: no ids. */
const listSessions = (handles: Handles) =>
  Effect.map(HttpSession.HttpSession, (session) =>
    Effect.map(session.sessions, (sessions) =>
      sessions.map((s) => ({
        current: s.current,
        createdAt: iso(s.createdAt),
        lastActiveAt: iso(s.lastActiveAt),
        expiresAt: iso(s.expiresAt),
        handle: handles.of(s.id)
      })))).pipe(Effect.flatten)

const wantsHtml = Effect.map(
  HttpServerRequest.HttpServerRequest,
  (request) => (request.headers["accept"] ?? "").includes("text/html")
)

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** The page: server-rendered, plain forms, no script. */
const page = (view: {
  readonly visits: number
  readonly source: Source
  readonly cache: SessionCache.Stats | undefined
  readonly now: number
  readonly user: string | null
  readonly sessions: ReadonlyArray<
    {
      current: boolean
      createdAt: string | null
      lastActiveAt: string | null
      expiresAt: string | null
      handle: string
    }
  >
}) => {
  const rows = view.sessions.map((s) =>
    `<li data-current="${s.current}">${s.current ? "<strong>this browser</strong>" : "another browser"} · signed in ${
      when(s.createdAt, view.now)
    } · last active ${when(s.lastActiveAt, view.now)} · expires ${when(s.expiresAt, view.now)}
      <form method="post" action="/sessions/revoke"><input type="hidden" name="handle" value="${
      escapeHtml(s.handle)
    }"><button type="submit">Revoke</button></form></li>`
  ).join("\n")
  const account = view.user === null
    ? `<form method="post" action="/login" id="login">
    <label>Name <input name="name" required maxlength="100" autocomplete="username"></label>
    <label><input type="checkbox" name="remember" id="remember"> Remember me</label>
    <button type="submit">Log in</button>
  </form>`
    : `<p>Signed in as <strong id="user">${escapeHtml(view.user)}</strong>.</p>
  <form method="post" action="/logout"><button type="submit">Log out</button></form>
  <h2>Your sessions</h2>
  <ul id="sessions">
${rows}
  </ul>
  <form method="post" action="/logout-others"><button type="submit" id="logout-others">Sign out everywhere else</button></form>
  <form method="post" action="/logout-everywhere"><button type="submit">Sign out everywhere</button></form>`
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>effect-session-redis demo</title>
  <style>
    body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222 }
    li { margin: .5rem 0 } li form, form { display: inline-block; margin: .25rem .5rem .25rem 0 }
    button { font: inherit; padding: .2rem .8rem } li[data-current="true"] { background: #eef6ee }
    time { white-space: nowrap } #library { color: #555; font-size: .9rem }
  </style>
</head>
<body>
  <h1>effect-session-redis demo</h1>
  <p>Visits in this session: <strong id="visits">${view.visits}</strong></p>
  ${account}
  ${library(view)}
</body>
</html>
`
}

/** What the library did for this request: where the session came from, and the near-cache's counters. */
const library = (view: { readonly source: Source; readonly cache: SessionCache.Stats | undefined }) => {
  const cache = view.cache
  const counters = cache === undefined
    ? ""
    : `<p id="cache">This instance's near-cache: mode <span data-stat="mode">${cache.mode}</span> · ${
      (["hits", "misses", "invalidations", "clears", "size"] as const).map((stat) =>
        `${stat === "size" ? "sessions held" : stat} <span data-stat="${stat}">${cache[stat]}</span>`
      ).join(" · ")
    }</p>`
  return `<section id="library">
    <p id="source" data-source="${view.source}">This request's session came from ${sourceText[view.source]}.</p>
    ${counters}
  </section>`
}

/** The routes, before the session middleware; `handles` names sessions on the page. */
export const routes = (handles: Handles) =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/",
      Effect.gen(function*() {
        const count = yield* AppSession.modify("visits", (n) => Option.getOrElse(n, () => 0) + 1)
        const user = Option.getOrNull(yield* AppSession.get("user"))
        if (!(yield* wantsHtml)) return json({ visits: count, user })
        const source = yield* FiberRef.get(readSource)
        const store = yield* SessionStore.SessionStore
        const cache = store.backend === "redis" ? yield* store.cacheStats : undefined
        const sessions = user === null ? [] : yield* listSessions(handles)
        return HttpServerResponse.html(page({ visits: count, source, cache, now: Date.now(), user, sessions }))
      })
    ),
    HttpRouter.post(
      "/login",
      Effect.gen(function*() {
        const { name, remember } = yield* loginBody
        const session = yield* HttpSession.HttpSession
        // A new id at the moment of privilege change, bound to the user: whoever knew the old id
        // learns nothing, and the new one is listed among the user's sessions. "Remember me" gives
        // the session a lifetime of its own, which every instance honours and the cookie follows;
        // otherwise it has the store's (`undefined`), even if an earlier login remembered it.
        yield* session.login(name, { expire: remember ? rememberFor : undefined })
        yield* AppSession.set("user", name)
        return yield* reply({ visits: yield* visits, user: name })
      }).pipe(
        Effect.catchTags({
          ParseError: () =>
            Effect.succeed(json({ error: "expected a JSON body {\"name\": \"...\", \"remember\": false}" }, 400)),
          RequestError: () => Effect.succeed(json({ error: "could not read the request body" }, 400))
        })
      )
    ),
    HttpRouter.post(
      "/logout",
      Effect.gen(function*() {
        const session = yield* HttpSession.HttpSession
        yield* session.destroy
        return yield* reply({ visits: 0, user: null })
      })
    ),
    HttpRouter.get(
      "/sessions",
      Effect.gen(function*() {
        const session = yield* HttpSession.HttpSession
        // Reading the user of a request without a cookie creates no session.
        if (Option.isNone(yield* session.user)) return notLoggedIn
        return json({ sessions: yield* listSessions(handles) })
      })
    ),
    HttpRouter.post(
      "/logout-everywhere",
      Effect.gen(function*() {
        const session = yield* HttpSession.HttpSession
        if (Option.isNone(yield* session.user)) return notLoggedIn
        return yield* reply({ revoked: yield* session.signOutEverywhere })
      })
    ),
    HttpRouter.post(
      "/logout-others",
      Effect.gen(function*() {
        const session = yield* HttpSession.HttpSession
        if (Option.isNone(yield* session.user)) return notLoggedIn
        return yield* reply({ revoked: yield* session.signOutOthers })
      })
    ),
    HttpRouter.post(
      "/sessions/revoke",
      Effect.gen(function*() {
        const { handle } = yield* body(Revoke)
        const session = yield* HttpSession.HttpSession
        if (Option.isNone(yield* session.user)) return notLoggedIn
        // Looked up among this user's own sessions only: a handle of someone else's matches nothing.
        const target = (yield* session.sessions).find((s) => handles.of(s.id) === handle)
        if (target === undefined) return json({ error: "no such session" }, 404)
        if (target.current) yield* session.destroy
        else yield* Effect.flatMap(SessionStore.SessionStore, (store) => store.destroy(target.id))
        return yield* reply({ revoked: 1 })
      }).pipe(
        Effect.catchTags({
          ParseError: () => Effect.succeed(json({ error: "expected a JSON body {\"handle\": \"...\"}" }, 400)),
          RequestError: () => Effect.succeed(json({ error: "could not read the request body" }, 400))
        })
      )
    ),
    HttpRouter.get(
      "/health",
      Effect.gen(function*() {
        const store = yield* SessionStore.SessionStore
        if (store.backend === "memory") return json({ store: "memory", redis: null })
        const up = yield* store.ping.pipe(Effect.as(true), Effect.orElseSucceed(() => false))
        return json({ store: "redis", redis: up ? "up" : "down" }, up ? 200 : 503)
      })
    )
  )

/** An error as a browser gets it: a page that says what happened, in the page's style. */
const errorPage = (title: string, text: string, status: number) =>
  HttpServerResponse.text(
    `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${title} · effect-session-redis demo</title>
  <style>body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222 }</style>
</head>
<body>
  <h1 id="error">${title}</h1>
  <p>${text}</p>
  <p><a href="/">Try again</a></p>
</body>
</html>
`,
    { status, contentType: "text/html; charset=utf-8" }
  )

/** `json({ error })` for API clients, an error page for a browser. */
const failure = (error: string, status: number, page: () => HttpServerResponse.HttpServerResponse) =>
  Effect.map(wantsHtml, (html) => html ? page() : json({ error }, status))

const storeUnavailable = (error: { readonly message: string }) =>
  Effect.zipRight(
    Effect.logWarning("session store unavailable", error.message),
    failure("session store unavailable", 503, () =>
      errorPage(
        "Sessions are unavailable",
        "The session store (Redis) does not answer right now. Nothing is lost: it reconnects by itself, and this page works again as soon as it is back.",
        503
      ))
  )

const sessionUnreadable = (error: { readonly message: string }) =>
  Effect.zipRight(
    Effect.logError("session data unreadable", error.message),
    failure("session data unreadable", 500, () =>
      errorPage("Your session could not be read", "Its stored data is not what this app wrote. Log in again.", 500))
  )

/**
 * The app: the routes with the session middleware, and the errors mapped to
 * JSON responses. Store errors are caught after the middleware, so that those
 * of the end-of-request write are mapped too.
 */
export const make = (options: HttpSession.Input) =>
  Effect.map(HttpSession.middleware(options), (session) =>
    routes(makeHandles(options.secrets[0]!)).pipe(
      session,
      // The page tells whether each request's session came from the near-cache (see `observed`).
      Effect.updateService(SessionStore.SessionStore, observe),
      Effect.catchTags({
        RedisConnectionError: storeUnavailable,
        RedisCommandError: storeUnavailable,
        SessionDecodeError: sessionUnreadable,
        SessionEncodeError: sessionUnreadable,
        SessionSchemaError: sessionUnreadable,
        RouteNotFound: () => Effect.succeed(json({ error: "not found" }, 404))
      })
    ))

/** The store: Redis at `redisUrl` when given, else in memory. */
export const storeLayer = (
  redisUrl: string | undefined
): Layer.Layer<SessionStore.SessionStore, SessionConfigError | RedisConnectionError> =>
  redisUrl === undefined ? SessionStore.layerMemory() : SessionStore.layer({ url: redisUrl })
