/**
 * HTTP test support: serve an app on a real Node server on a free loopback
 * port, and talk to it with `fetch` and a cookie jar.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createServer, type Server } from "node:http"

/** A parsed `Set-Cookie` header. Attribute names are lowercase; flags map to `true`. */
export interface SetCookie {
  readonly name: string
  readonly value: string
  readonly attributes: Readonly<Record<string, string | true>>
}

/** Parses one `Set-Cookie` header value. */
export const parseSetCookie = (header: string): SetCookie => {
  const [pair = "", ...parts] = header.split(";")
  const eq = pair.indexOf("=")
  const attributes: Record<string, string | true> = {}
  for (const part of parts) {
    const i = part.indexOf("=")
    const key = (i === -1 ? part : part.slice(0, i)).trim().toLowerCase()
    if (key !== "") attributes[key] = i === -1 ? true : part.slice(i + 1).trim()
  }
  return { name: pair.slice(0, eq).trim(), value: decodeURIComponent(pair.slice(eq + 1).trim()), attributes }
}

/** Whether a `Set-Cookie` tells the browser to drop the cookie. */
export const isExpired = (cookie: SetCookie): boolean => {
  const maxAge = cookie.attributes["max-age"]
  if (typeof maxAge === "string") return Number(maxAge) <= 0
  const expires = cookie.attributes["expires"]
  return typeof expires === "string" && Date.parse(expires) <= Date.now()
}

/** A response, read whole. */
export interface Reply {
  readonly status: number
  readonly headers: Headers
  /** The body parsed as JSON when it is JSON, else the text. */
  readonly body: unknown
  readonly setCookies: ReadonlyArray<SetCookie>
}

/** Options of one request. */
export interface RequestOptions {
  readonly method?: string | undefined
  /** Sent as JSON. */
  readonly json?: unknown
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Replaces the jar's `Cookie` header for this request (the jar still learns from the reply). */
  readonly cookie?: string | undefined
}

/** A client with its own cookie jar, like one browser. */
export interface Client {
  readonly request: (path: string, options?: RequestOptions) => Effect.Effect<Reply>
  readonly get: (path: string) => Effect.Effect<Reply>
  readonly post: (path: string, json?: unknown) => Effect.Effect<Reply>
  /** The jar: cookie name to value. Tests may change it to forge or replay cookies. */
  readonly jar: Map<string, string>
  /** Whether the jar holds the cookie now: for a client that honours Max-Age, one past its age is dropped first. */
  readonly holds: (name: string) => Effect.Effect<boolean>
}

/** Options of {@link makeClient}. */
export interface ClientOptions {
  /**
   * Keep each cookie only as long as its `Max-Age` says, as browsers do, on
   * Effect's `Clock` (so a `TestClock` moves it): a cookie past its age is
   * dropped before the next request. Off by default: the jar then keeps a
   * cookie until a `Set-Cookie` expires it.
   */
  readonly honourMaxAge?: boolean | undefined
}

/**
 * Makes a client for `baseUrl`. The jar keeps what `Set-Cookie` says and drops
 * expired cookies; it ignores domain, path and Secure, since every test talks
 * to one loopback origin.
 */
export const makeClient = (baseUrl: string, clientOptions: ClientOptions = {}): Client => {
  const jar = new Map<string, string>()
  // When each cookie runs out (epoch ms on Effect's Clock), for a client that honours Max-Age.
  const deadlines = new Map<string, number>()
  const honour = clientOptions.honourMaxAge === true
  const dropExpired = (now: number) => {
    if (!honour) return
    for (const [name, deadline] of deadlines) {
      if (deadline <= now) {
        jar.delete(name)
        deadlines.delete(name)
      }
    }
  }
  const request = (path: string, options: RequestOptions = {}): Effect.Effect<Reply> =>
    Effect.clockWith((clock) =>
      Effect.promise(async (signal) => {
        dropExpired(clock.unsafeCurrentTimeMillis())
        const headers = new Headers(options.headers)
        const cookie = options.cookie ?? [...jar].map(([name, value]) => `${name}=${value}`).join("; ")
        if (cookie !== "") headers.set("cookie", cookie)
        if (options.json !== undefined) headers.set("content-type", "application/json")
        const response = await fetch(new URL(path, baseUrl), {
          method: options.method ?? (options.json === undefined ? "GET" : "POST"),
          headers,
          body: options.json === undefined ? null : JSON.stringify(options.json),
          signal
        })
        const text = await response.text()
        let body: unknown = text
        if (response.headers.get("content-type")?.includes("json")) body = JSON.parse(text)
        const setCookies = response.headers.getSetCookie().map(parseSetCookie)
        const received = clock.unsafeCurrentTimeMillis()
        for (const c of setCookies) {
          deadlines.delete(c.name)
          if (isExpired(c)) {
            jar.delete(c.name)
            continue
          }
          jar.set(c.name, c.value)
          const maxAge = c.attributes["max-age"]
          if (honour && typeof maxAge === "string") deadlines.set(c.name, received + Number(maxAge) * 1000)
        }
        return { status: response.status, headers: response.headers, body, setCookies }
      })
    )
  return {
    request,
    get: (path) => request(path),
    post: (path, json) => request(path, { method: "POST", json }),
    jar,
    holds: (name) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          dropExpired(clock.unsafeCurrentTimeMillis())
          return jar.has(name)
        })
      )
  }
}

/**
 * Serves `app` on a Node HTTP server on a free loopback port for the life of
 * the scope, and returns its base url. The app's requirements come from the
 * caller's context.
 */
export const serve = <E, R>(
  app: HttpApp.Default<E, R>
): Effect.Effect<string, never, Scope.Scope | Exclude<R, HttpServerRequest.HttpServerRequest | Scope.Scope>> =>
  Effect.gen(function*() {
    let node: Server | undefined
    const server = yield* Effect.orDie(
      NodeHttpServer.make(() => (node = createServer()), { port: 0, host: "127.0.0.1" })
    )
    // fetch keeps connections alive; without this, closing the server would wait for them.
    yield* Effect.addFinalizer(() => Effect.sync(() => node?.closeAllConnections()))
    yield* HttpServer.serveEffect(app).pipe(Effect.provideService(HttpServer.HttpServer, server))
    if (server.address._tag !== "TcpAddress") return yield* Effect.dieMessage("expected a TCP address")
    return `http://127.0.0.1:${server.address.port}`
  }) as Effect.Effect<string, never, Scope.Scope | Exclude<R, HttpServerRequest.HttpServerRequest | Scope.Scope>>
