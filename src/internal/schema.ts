import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import { SessionConfigError } from "../SessionError.js"
import * as EnvConfig from "./envConfig.js"
import * as Redact from "./redact.js"
import * as Suggest from "./suggest.js"

/**
 * The longest timer Node honours: a longer `setTimeout` fires after 1 ms
 * (with a TimeoutOverflowWarning).
 *
 * @internal
 */
export const maxTimerMillis = 2 ** 31 - 1

/**
 * The longest lifetime the store accepts. `now + lifetime` must stay an exact
 * integer in JavaScript (2^53) and within PEXPIRE's range in Redis (2^63 ms
 * from now); 10^15 ms (about 31 700 years) is far inside both.
 *
 * @internal
 */
export const maxLifetimeMillis = 1e15

/**
 * A duration as users write it: a `Duration`, a string such as `"15 minutes"`,
 * or a bare number (or numeric string) in `unit`. It must be finite, at least
 * `minMillis` and at most `maxMillis`; a fraction of a millisecond is rounded
 * up, because Redis (PEXPIRE) and Node's timers count whole milliseconds.
 *
 * @internal
 */
export const durationInput = (
  unit: "seconds" | "millis",
  options: {
    readonly minMillis?: number
    readonly maxMillis?: number
    /** Why `maxMillis` is the limit, for the message. */
    readonly limit?: string
    readonly expected?: string
  } = {}
) => {
  const minMillis = options.minMillis ?? 1
  const maxMillis = options.maxMillis ?? Number.MAX_SAFE_INTEGER
  const expected = options.expected ??
    `Expected a positive duration (a number of ${unit}, or a string such as "15 minutes")${
      options.maxMillis === undefined
        ? ""
        : ` of at most ${maxMillis} ms${options.limit === undefined ? "" : ` (${options.limit})`}`
    }`
  return Schema.transformOrFail(
    Schema.Union(Schema.DurationFromSelf, Schema.Number, Schema.String),
    Schema.DurationFromSelf,
    {
      strict: true,
      decode: (input, _, ast) => {
        const numeric = typeof input === "number"
          ? input
          : typeof input === "string" && /^\s*\d+(\.\d+)?\s*$/.test(input)
          ? Number(input)
          : undefined
        const duration = numeric !== undefined
          ? Option.some(unit === "seconds" ? Duration.seconds(numeric) : Duration.millis(numeric))
          : Duration.decodeUnknown(input)
        return Option.match(
          Option.filter(
            Option.map(Option.filter(duration, Duration.isFinite), Duration.toMillis),
            (millis) => millis >= minMillis && Math.ceil(millis) <= maxMillis
          ),
          {
            onNone: () => ParseResult.fail(new ParseResult.Type(ast, input, `${expected}, got ${String(input)}`)),
            onSome: (millis) => ParseResult.succeed(Duration.millis(Math.ceil(millis)))
          }
        )
      },
      encode: ParseResult.succeed
    }
  )
}

/**
 * A session lifetime: at most {@link maxLifetimeMillis}.
 *
 * @internal
 */
export const lifetime = (unit: "seconds" | "millis") =>
  durationInput(unit, { maxMillis: maxLifetimeMillis, limit: "beyond it, expiry times overflow" })

/**
 * The sliding session lifetime when none is given: 900 s, as in Dancer::Session::Redis.
 *
 * @internal
 */
export const defaultExpire: Duration.Duration = Duration.seconds(900)

/**
 * A secret as users give it: a `Redacted` string, or a plain string that is
 * wrapped in `Redacted` at once (passwords, cookie secrets).
 *
 * @internal
 */
export const RedactedString = Schema.Union(Schema.RedactedFromSelf(Schema.String), Schema.Redacted(Schema.String))

// Messages that were built never to show the value they are about (a secret's length, not the secret).
const valueFreeMessages = new Set<string>()

/**
 * Marks `message` as one that shows nothing of the value it is about, so that
 * the decoder reports it even for a secret field (whose other messages it
 * replaces, since they may quote the secret). Returns the message.
 *
 * @internal
 */
export const valueFree = (message: string): string => {
  valueFreeMessages.add(message)
  return message
}

/**
 * A choice among a few strings, whose message lists them all (and points out
 * a difference of case), where a plain `Schema.Literal` names only the first.
 *
 * @internal
 */
export const oneOf = <const Literals extends ReadonlyArray<string>>(...literals: Literals) => {
  const list = literals.map((l) => JSON.stringify(l))
  const expected = `Expected ${list.slice(0, -1).join(", ")} or ${list[list.length - 1]}`
  return Schema.Literal(...literals).annotations({
    message: (issue) => {
      const actual = issue.actual
      const folded = typeof actual === "string"
        ? literals.find((l) => l.toLowerCase() === actual.trim().toLowerCase())
        : undefined
      return {
        message: `${expected}, got ${JSON.stringify(actual) ?? String(actual)}${
          folded === undefined ? "" : ` (did you mean ${JSON.stringify(folded)}?)`
        }`,
        override: true
      }
    }
  })
}

// The keys a settings object may have at `path`, for "did you mean": read from the Schema itself.
const keysAt = (ast: AST.AST, path: ReadonlyArray<PropertyKey>): ReadonlyArray<string> => {
  const members = (node: AST.AST): ReadonlyArray<AST.TypeLiteral> => {
    switch (node._tag) {
      case "TypeLiteral":
        return [node]
      case "Union":
        return node.types.flatMap(members)
      case "Refinement":
        return members(node.from)
      case "Transformation":
        return members(node.from)
      case "Suspend":
        return members(node.f())
      default:
        return []
    }
  }
  let nodes = members(ast)
  for (const key of path) {
    nodes = nodes.flatMap((node) =>
      node.propertySignatures.filter((p) => p.name === key).flatMap((p) => members(p.type))
    )
  }
  return nodes.flatMap((node) => node.propertySignatures.map((p) => String(p.name)))
}

/**
 * A strict decoder for settings objects: unknown keys are errors (with the
 * closest known key, if one is close), and the first problem becomes a
 * `SessionConfigError` naming its field.
 *
 * @internal
 */
export const decoder = <A, I>(schema: Schema.Schema<A, I>, noun: "setting" | "option") => {
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "error", errors: "first" })
  const encoded = AST.encodedAST(schema.ast)
  const unknownKey = (path: ReadonlyArray<PropertyKey>): string => {
    const name = String(path[path.length - 1])
    const suggestion = Suggest.closest(name, keysAt(encoded, path.slice(0, -1)))
    return suggestion === undefined
      ? `unknown ${noun} (check its spelling)`
      : `unknown ${noun}: did you mean ${JSON.stringify(suggestion)}?`
  }
  return (input: unknown): Either.Either<A, SessionConfigError> =>
    Either.mapLeft(decode(input), (error) => {
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
      const field = issue === undefined || issue.path.length === 0 ? `(${noun}s)` : issue.path.join(".")
      return new SessionConfigError({
        of: noun,
        field,
        detail: issue === undefined
          ? `invalid ${noun}s`
          : issue._tag === "Unexpected"
          ? unknownKey(issue.path)
          : /password|secret|^tls\.key$/i.test(field) && !valueFreeMessages.has(issue.message)
          // Whatever was given in its place may be the password itself.
          ? "Expected a string or a Redacted string (the value given is not shown)"
          : Redact.text(issue.message, [])
      })
    })
}

/**
 * The environment variable (after the prefix) and kind of each setting.
 *
 * @internal
 */
export const envTable: EnvConfig.Table = {
  server: ["SERVER", "string"],
  sock: ["SOCK", "string"],
  url: ["URL", "string"],
  sentinels: ["SENTINELS", "list"],
  sentinelMaster: ["SENTINEL_MASTER", "string"],
  sentinelPassword: ["SENTINEL_PASSWORD", "redacted"],
  cluster: ["CLUSTER", "list"],
  "tls.enabled": ["TLS_ENABLED", "boolean"],
  "tls.ca": ["TLS_CA", "string"],
  "tls.cert": ["TLS_CERT", "string"],
  "tls.key": ["TLS_KEY", "redacted"],
  "tls.servername": ["TLS_SERVERNAME", "string"],
  "tls.rejectUnauthorized": ["TLS_REJECT_UNAUTHORIZED", "boolean"],
  waitReplicas: ["WAIT_REPLICAS", "integer"],
  waitTimeout: ["WAIT_TIMEOUT", "string"],
  username: ["USERNAME", "string"],
  password: ["PASSWORD", "redacted"],
  database: ["DATABASE", "integer"],
  expire: ["EXPIRE", "string"],
  absoluteExpire: ["ABSOLUTE_EXPIRE", "string"],
  debug: ["DEBUG", "boolean"],
  prefix: ["PREFIX", "string"],
  legacyPrefix: ["LEGACY_PREFIX", "string"],
  connectTimeout: ["CONNECT_TIMEOUT", "string"],
  commandTimeout: ["COMMAND_TIMEOUT", "string"],
  autoPipelining: ["AUTO_PIPELINING", "boolean"],
  "cache.enabled": ["CACHE_ENABLED", "boolean"],
  "cache.capacity": ["CACHE_CAPACITY", "integer"],
  "cache.tracking": ["CACHE_TRACKING", "booleanOrString"],
  "cache.maxStaleness": ["CACHE_MAX_STALENESS", "string"]
}

// Settings read from the environment, and the prefix they were read under.
const prefixes = new WeakMap<object, string>()

/**
 * Remembers that `config` was read under `prefix`.
 *
 * @internal
 */
export const rememberPrefix = <A extends object>(config: A, prefix: string): A => {
  prefixes.set(config, prefix)
  return EnvConfig.remember(config, envTable, prefix, "setting")
}

/**
 * A setting that only the server could reject (such as `database`), reported
 * as a `ConfigError` under the variable it was read from.
 *
 * @internal
 */
export const toConfigError = (config: object, error: SessionConfigError): ConfigError.ConfigError => {
  const prefix = prefixes.get(config)
  return EnvConfig.toConfigError(envTable, error, prefix === undefined ? [] : [prefix])
}
