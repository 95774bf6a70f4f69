/**
 * The middleware's options: a Schema that decodes them from a plain object or
 * from the environment, and names the option it rejects.
 */
import * as Arr from "effect/Array"
import * as Config from "effect/Config"
import type * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { SessionConfigError } from "../SessionError.js"
import * as EnvConfig from "./envConfig.js"
import * as InternalSchema from "./schema.js"

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

const Secret = InternalSchema.RedactedString.pipe(
  Schema.filter((secret) => {
    const length = Redacted.value(secret).length
    // The message gives the length only: a secret must never reach a log.
    return length >= 32 || InternalSchema.valueFree(
      length === 0
        ? "Expected a secret of at least 32 characters, got an empty string (is the variable it comes from set?)"
        : `Expected a secret of at least 32 characters, got one of ${length}`
    )
  })
)

const Secrets = Schema.Array(Secret).annotations({
  message: () => ({
    message: InternalSchema.valueFree("Expected a list of secrets (strings or Redacted strings), such as [secret]"),
    override: false
  })
}).pipe(
  Schema.filter(Arr.isNonEmptyReadonlyArray, {
    message: () => InternalSchema.valueFree("Expected at least one secret")
  })
)

const Secure = Schema.Union(Schema.Boolean, Schema.Literal("auto")).annotations({
  message: (issue) => ({
    message: `Expected true, false or "auto", got ${JSON.stringify(issue.actual) ?? String(issue.actual)}`,
    override: true
  })
})

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
 * - `maxAge`: the cookie lifetime (a number means seconds); `null` makes a browser-session cookie. Unset (the default), the
 *   cookie follows the session's own lifetime (or the store's `expire`), never past `absoluteExpire`, and is sent again
 *   whenever the request refreshed that lifetime (a write, or a read once per tenth of it).
 * - `httpOnly` (default true), `sameSite` (`"lax"` by default, `"strict"` or `"none"`).
 * - `secure`: true, false, or `"auto"` (the default): Secure when the request came over https.
 * - `trustProxy`: let `X-Forwarded-Proto` say whether the request came over https (default false).
 * - `rolling`: send the cookie on every response, renewing its lifetime (default false).
 * - `saveUninitialized`: save a new session that the handler read but did not change (default false).
 * - `cookieFormat`: `"native"` (the default) or `"express-session"`: read and write the cookie exactly as
 *   express-session does (`s:<id>.<signature>`, URL-encoded), so that Express routes and Effect routes of
 *   one app share one cookie (name it `"connect.sid"`, as express-session does) and one session.
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
  secure: Schema.optionalWith(Secure, { default: () => "auto" as const }),
  trustProxy: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  sameSite: Schema.optionalWith(InternalSchema.oneOf("lax", "strict", "none"), { default: () => "lax" as const }),
  rolling: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  saveUninitialized: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  cookieFormat: Schema.optionalWith(InternalSchema.oneOf("native", "express-session"), {
    default: () => "native" as const
  })
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
export const decodeOptions = (input: unknown): Effect.Effect<Options, SessionConfigError> => decodeInput(input)

/** The environment variable (after the prefix) and kind of each option. */
const table: EnvConfig.Table = {
  name: ["NAME", "string"],
  secrets: ["SECRETS", "redactedList"],
  domain: ["DOMAIN", "string"],
  path: ["PATH", "string"],
  maxAge: ["MAX_AGE", "string"],
  httpOnly: ["HTTP_ONLY", "boolean"],
  secure: ["SECURE", "string"],
  trustProxy: ["TRUST_PROXY", "boolean"],
  sameSite: ["SAME_SITE", "string"],
  rolling: ["ROLLING", "boolean"],
  saveUninitialized: ["SAVE_UNINITIALIZED", "boolean"],
  cookieFormat: ["COOKIE_FORMAT", "string"]
}

// The two options whose text form differs from their value.
const adapt = (input: Record<string, unknown>): Record<string, unknown> => {
  const { maxAge, secure, ...rest } = input
  const out: Record<string, unknown> = rest
  if (typeof maxAge === "string") out.maxAge = maxAge.trim() === "session" ? null : maxAge
  if (typeof secure === "string") {
    const s = secure.trim().toLowerCase()
    out.secure = s === "true" ? true : s === "false" ? false : s
  }
  return out
}

/**
 * Reads the options through Effect `Config` under `prefix` (default
 * `HTTP_SESSION`): `HTTP_SESSION_SECRETS` (comma-separated, first signs),
 * `_NAME`, `_DOMAIN`, `_PATH`, `_MAX_AGE` (seconds, a duration such as
 * `"1 hour"`, or `"session"` for a browser-session cookie), `_HTTP_ONLY`,
 * `_SECURE` (`true`, `false` or `auto`), `_TRUST_PROXY`, `_SAME_SITE`,
 * `_ROLLING`, `_SAVE_UNINITIALIZED`, `_COOKIE_FORMAT`. A rejected value fails with a
 * `ConfigError` that names the variable. The middleware made from these
 * options by `HttpSession.middleware` logs a warning,
 * once, for each variable under the prefix that is no option.
 *
 * @since 0.1.0
 * @category config
 */
export const configWithPrefix = (prefix: string = "HTTP_SESSION"): Config.Config<Options> =>
  Config.map(EnvConfig.make({ table, prefix, decode: decodeInput, adapt }), (options) =>
    // So that the middleware can warn about the variables under the prefix that are no option.
    EnvConfig.remember(options, table, prefix, "option"))

/**
 * The options read from the environment under `HTTP_SESSION_*`; see
 * {@link configWithPrefix}.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = configWithPrefix()
