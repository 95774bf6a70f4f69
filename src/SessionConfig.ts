/**
 * The store's settings: a Schema that decodes them from a plain object or from
 * the environment, and names the field of any setting it rejects.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as EnvConfig from "./internal/envConfig.js"
import * as Redact from "./internal/redact.js"
import * as UrlDatabase from "./internal/redisUrl.js"
import * as InternalSchema from "./internal/schema.js"
import type { SessionConfigError } from "./SessionError.js"

/**
 * A TCP address, decoded from `"host:port"` (`"[::1]:6380"` for IPv6). A
 * missing port means 6379.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Server = Schema.transformOrFail(
  Schema.String,
  Schema.Struct({ host: Schema.String, port: Schema.Int }),
  {
    strict: true,
    decode: (input, _, ast) => {
      if (/^\s*rediss?:\/\//i.test(input)) {
        return ParseResult.fail(
          new ParseResult.Type(
            ast,
            input,
            `Expected "host:port", got a url (${JSON.stringify(Redact.url(input.trim()))}): give it as \`url\` instead`
          )
        )
      }
      const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(input.trim())
      const port = match?.[3] === undefined ? 6379 : Number(match[3])
      return match === null || port < 1 || port > 65535
        ? ParseResult.fail(
          new ParseResult.Type(
            ast,
            input,
            `Expected "host:port" with a port from 1 to 65535, got ${JSON.stringify(Redact.url(input))}`
          )
        )
        : ParseResult.succeed({ host: match[1] ?? match[2]!, port })
    },
    encode: ({ host, port }) => ParseResult.succeed(host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`)
  }
)

const RedisUrl = Schema.String.pipe(
  Schema.filter((s) => /^rediss?:\/\/[^\s]*$/.test(s) && URL.canParse(s), {
    message: (issue) => `Expected a redis:// or rediss:// url, got ${JSON.stringify(Redact.url(String(issue.actual)))}`
  })
)

const Password = InternalSchema.RedactedString

// Lifetimes go to PEXPIRE and into `now + lifetime` arithmetic; timeouts go to Node timers.
const lifetime = InternalSchema.lifetime

const timeout = InternalSchema.durationInput("millis", {
  maxMillis: InternalSchema.maxTimerMillis,
  limit: "2^31 − 1 ms, about 24.8 days: Node's timers overflow beyond it"
})

const NonNegativeInt = (what: string) =>
  Schema.Number.pipe(
    Schema.filter((n) => Number.isInteger(n) && n >= 0, {
      message: (issue) => `Expected ${what} (an integer ≥ 0), got ${String(issue.actual)}`
    })
  )

/**
 * TLS settings, for `server`, `url`, `sentinels` and `cluster` (a `rediss://` url turns TLS on by itself).
 *
 * - `enabled`: connect with TLS (default true once `tls` is given).
 * - `ca`: the CA certificate(s) that signed the server's certificate, as PEM text or a path to a PEM
 *   file; default: Node's bundled CAs.
 * - `cert`, `key`: a client certificate and its key (PEM text or a path), for servers that require one
 *   (`tls-auth-clients`); the key is redacted.
 * - `servername`: the name the server's certificate must carry (SNI), when it differs from the host.
 * - `rejectUnauthorized`: verify the server's certificate (default true; turn off only for tests).
 *
 * @since 0.2.0
 * @category schemas
 */
export const TlsSettings = Schema.Struct({
  enabled: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  ca: Schema.optional(Schema.NonEmptyString),
  cert: Schema.optional(Schema.NonEmptyString),
  key: Schema.optional(InternalSchema.RedactedString),
  servername: Schema.optional(Schema.NonEmptyTrimmedString),
  rejectUnauthorized: Schema.optionalWith(Schema.Boolean, { default: () => true })
})

const ServerList = Schema.Array(Server).pipe(
  Schema.filter((list) => list.length > 0 || "Expected at least one \"host:port\"")
)

/**
 * The near-cache settings.
 *
 * - `enabled`: keep recently used sessions in memory (default true).
 * - `capacity`: the most sessions kept; the least recently used goes first (default 10 000).
 * - `tracking`: keep the cache coherent with Redis server-assisted invalidation (default true).
 *   `true` or `"keys"`: per-key tracking, where Redis tells an instance about the sessions it read, only, so a
 *   write costs the rest of the fleet nothing. `"broadcast"`: every instance hears of every write under the
 *   prefix (Redis's BCAST mode), which costs every instance CPU per write of any other. `false`: no
 *   tracking; entries are served for at most `maxStaleness`.
 * - `maxStaleness`: where tracking is off or unavailable, how long an entry may be served without asking Redis (default 1 s; a number means milliseconds; rounded up to whole milliseconds, at most 10^15 ms).
 *
 * @since 0.1.0
 * @category schemas
 */
export const CacheSettings = Schema.Struct({
  enabled: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  capacity: Schema.optionalWith(NonNegativeInt("a capacity"), { default: () => 10_000 }),
  tracking: Schema.optionalWith(Schema.Union(Schema.Boolean, Schema.Literal("keys", "broadcast")), {
    default: () => true
  }),
  maxStaleness: Schema.optionalWith(lifetime("millis"), { default: () => Duration.seconds(1) })
})

const where = ["server", "sock", "url", "sentinels", "cluster"] as const

/**
 * The `waitTimeout` when none is given: one second, but at most half of
 * `commandTimeout`, which bounds every call and so the WAIT too.
 *
 * @since 0.2.0
 * @category constructors
 */
export const defaultWaitTimeout = (commandTimeout: Duration.Duration): Duration.Duration =>
  Duration.min(Duration.seconds(1), Duration.millis(Math.max(1, Math.floor(Duration.toMillis(commandTimeout) / 2))))

// The settings as given, checked against each other; `SessionConfig` below fills in what depends on others.
const Settings = Schema.Struct({
  server: Schema.optional(Server),
  sock: Schema.optional(Schema.NonEmptyTrimmedString),
  url: Schema.optional(RedisUrl),
  sentinels: Schema.optional(ServerList),
  sentinelMaster: Schema.optional(Schema.NonEmptyTrimmedString),
  sentinelPassword: Schema.optional(Password),
  cluster: Schema.optional(ServerList),
  tls: Schema.optional(TlsSettings),
  waitReplicas: Schema.optionalWith(NonNegativeInt("a number of replicas"), { default: () => 0 }),
  // Its default depends on commandTimeout: filled in below.
  waitTimeout: Schema.optional(timeout),
  username: Schema.optional(Schema.NonEmptyString),
  password: Schema.optional(Password),
  // The server says how many databases it has; it is asked when the store connects.
  database: Schema.optionalWith(NonNegativeInt("a database number"), { default: () => 0 }),
  expire: Schema.optionalWith(lifetime("seconds"), { default: () => InternalSchema.defaultExpire }),
  absoluteExpire: Schema.optional(lifetime("seconds")),
  debug: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  prefix: Schema.optionalWith(Schema.NonEmptyString, { default: () => "session:" }),
  legacyPrefix: Schema.optional(Schema.NonEmptyString),
  connectTimeout: Schema.optionalWith(timeout, { default: () => Duration.seconds(5) }),
  commandTimeout: Schema.optionalWith(timeout, { default: () => Duration.seconds(2) }),
  autoPipelining: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  cache: Schema.optionalWith(CacheSettings, { default: () => Schema.decodeSync(CacheSettings)({}) })
}).pipe(
  Schema.filter((s) => {
    const given = where.filter((k) => s[k] !== undefined)
    if (given.length !== 1) {
      return {
        path: [given[1] ?? "server"],
        message: given.length === 0
          ? "Expected one of server, sock, url, sentinels or cluster to say where Redis is"
          : `Expected only one of server, sock, url, sentinels or cluster, got ${given.join(" and ")}`
      }
    }
    if (s.sentinels !== undefined && s.sentinelMaster === undefined) {
      return { path: ["sentinelMaster"], message: "Expected the master group name that the sentinels monitor" }
    }
    if (s.sentinels === undefined) {
      const stray = (["sentinelMaster", "sentinelPassword"] as const).find((k) => s[k] !== undefined)
      if (stray !== undefined) return { path: [stray], message: `${stray} is only used with sentinels` }
    }
    if (s.url !== undefined) {
      // The url's database wins over the setting in ioredis: a word there crashed the handshake, and
      // a conflicting `database` setting was silently ignored.
      const named = UrlDatabase.database(s.url)
      if (Either.isLeft(named)) return { path: ["url"], message: named.left }
      if (named.right !== undefined && s.database !== 0 && s.database !== named.right) {
        return {
          path: ["database"],
          message: `Expected one database: the url names ${named.right}, the database setting ${s.database}`
        }
      }
    }
    if (s.cluster !== undefined && s.database !== 0) {
      return { path: ["database"], message: "Redis Cluster has only database 0" }
    }
    if (
      s.waitReplicas > 0 && s.waitTimeout !== undefined &&
      Duration.greaterThanOrEqualTo(s.waitTimeout, s.commandTimeout)
    ) {
      return {
        path: ["waitTimeout"],
        message: `Expected a waitTimeout shorter than commandTimeout (${
          Duration.toMillis(s.commandTimeout)
        } ms), which bounds WAIT, got ${
          Duration.toMillis(s.waitTimeout)
        } ms: lower waitTimeout, raise commandTimeout, or leave waitTimeout out (its default is 1 second, at most half of commandTimeout)`
      }
    }
    if (s.sock !== undefined && s.tls?.enabled === true) {
      return { path: ["tls"], message: "TLS is not used over a unix socket" }
    }
    if (s.url?.startsWith("rediss:") === false && s.tls?.enabled === true) {
      return { path: ["tls"], message: "Expected a rediss:// url with tls (a redis:// url is plain TCP)" }
    }
    return true
  })
)

const Decoded = Schema.typeSchema(Schema.Struct({ ...Settings.from.fields, waitTimeout: Schema.DurationFromSelf }))

/**
 * The settings Schema. Exactly one of `server`, `sock`, `url`, `sentinels`
 * and `cluster` says where Redis is; everything else has a default.
 *
 * - `server`: `"host:port"`; `sock`: a unix socket path; `url`: `redis://` or `rediss://` (TLS). A database
 *   the url names (`redis://host/3`, or `?db=3`) must be an integer from 0 to 2^31 − 1, and is the one used;
 *   a `database` setting that says another is rejected.
 * - `sentinels`: `"host:port"` of one or more Redis Sentinels, with `sentinelMaster` (the master group
 *   name, required) and `sentinelPassword` (if the sentinels require one). The store finds the master
 *   through them and follows failovers.
 * - `cluster`: `"host:port"` of one or more Redis Cluster nodes to discover the cluster from.
 * - `tls`: see {@link TlsSettings}.
 * - `waitReplicas` (default 0) and `waitTimeout` (default 1 s, at most half of `commandTimeout`): a write
 *   (create, flush, destroy, touch) succeeds only once `WAIT` confirms that many replicas have it;
 *   otherwise it fails with `RedisConnectionError` reason `"Replication"`. A `waitTimeout` given must be
 *   shorter than `commandTimeout`, which bounds the WAIT.
 * - `password` (a string is wrapped in `Redacted`; never printed, not even in errors), `username` (Redis ACL
 *   user), `database` (default 0; one the server does not have fails the layer when it connects, naming `database`).
 * - `expire`: the sliding session lifetime (default 900 s; a number means seconds, as in Dancer::Session::Redis).
 *   At most 10^15 ms, so that expiry times stay exact integers in JavaScript and in range for PEXPIRE.
 * - `absoluteExpire`: the absolute session lifetime, counted from creation however active the session is
 *   (default: none; a number means seconds). A session's Redis TTL never reaches past `createdAt + absoluteExpire`.
 * - `debug`: log every Redis interaction to stderr, without secrets (default false).
 * - `prefix`: the key prefix (default `"session:"`).
 * - `legacyPrefix`: where connect-redis kept its sessions (for example `"sess:"`): a miss looks there and
 *   imports the session once, atomically, keeping its remaining lifetime (not on Redis Cluster, where the
 *   two keys live in different slots). Without it, a miss sends nothing more.
 * - `connectTimeout` (default 5 s), `commandTimeout` (default 2 s): numbers mean milliseconds, as in ioredis.
 *   At most 2^31 − 1 ms (about 24.8 days), Node's longest timer; the socket timeout derived from
 *   `commandTimeout` (twice it) is capped there too.
 * - Every duration is rounded up to whole milliseconds, which is what Redis and Node's timers count.
 * - `autoPipelining`: let ioredis batch the commands of concurrent operations into one write (default true).
 *   Turn it off to shave the one event-loop turn each command then waits, when operations rarely overlap.
 * - `cache`: see {@link CacheSettings}.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SessionConfig = Settings.pipe(
  Schema.transform(Decoded, {
    strict: true,
    decode: (s) => ({ ...s, waitTimeout: s.waitTimeout ?? defaultWaitTimeout(s.commandTimeout) }),
    encode: (s) => s
  })
)

/**
 * The decoded settings.
 *
 * @since 0.1.0
 * @category models
 */
export type SessionConfig = typeof SessionConfig.Type

/**
 * The settings as a user writes them.
 *
 * @since 0.1.0
 * @category models
 */
export type Input =
  | Schema.Schema.Encoded<typeof SessionConfig>
  | {
    readonly [K in keyof Schema.Schema.Encoded<typeof SessionConfig>]: K extends "password" | "sentinelPassword"
      ? string | Redacted.Redacted<string>
      : Schema.Schema.Encoded<typeof SessionConfig>[K]
  }

export {
  /**
   * A setting was rejected; `field` names it.
   *
   * @since 0.1.0
   * @category errors
   */
  SessionConfigError
} from "./SessionError.js"

const decodeInput = InternalSchema.decoder(SessionConfig, "setting")

/**
 * Decodes settings from a plain object. Fails with a `SessionConfigError` that
 * names the first rejected field; an unknown key is rejected too.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decode = (input: unknown): Effect.Effect<SessionConfig, SessionConfigError> => decodeInput(input)

/**
 * Decodes settings from a plain object, or throws the `SessionConfigError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decodeSync = (input: unknown): SessionConfig => Either.getOrThrowWith(decodeInput(input), (e) => e)

/**
 * Reads the settings through Effect `Config` under `prefix` (default
 * `REDIS_SESSION`): `REDIS_SESSION_SERVER`, `_SOCK`, `_URL`, `_SENTINELS` and `_CLUSTER`
 * (comma-separated), `_SENTINEL_MASTER`, `_SENTINEL_PASSWORD`, `_TLS_ENABLED`, `_TLS_CA`, `_TLS_CERT`,
 * `_TLS_KEY`, `_TLS_SERVERNAME`, `_TLS_REJECT_UNAUTHORIZED`, `_WAIT_REPLICAS`, `_WAIT_TIMEOUT`, `_USERNAME`,
 * `_PASSWORD`, `_DATABASE`, `_EXPIRE`, `_ABSOLUTE_EXPIRE`, `_DEBUG`, `_PREFIX`, `_LEGACY_PREFIX`,
 * `_CONNECT_TIMEOUT`, `_COMMAND_TIMEOUT`, `_AUTO_PIPELINING`, `_CACHE_ENABLED`, `_CACHE_CAPACITY`, `_CACHE_TRACKING`,
 * `_CACHE_MAX_STALENESS`. A rejected value fails with a `ConfigError` that
 * names the variable.
 *
 * @since 0.1.0
 * @category config
 */
export const configWithPrefix = (prefix: string = "REDIS_SESSION"): Config.Config<SessionConfig> =>
  EnvConfig.make({ table: InternalSchema.envTable, prefix, decode: decodeInput }).pipe(
    // So that a setting only the server can reject (the database) is reported under its variable.
    Config.map((config) => InternalSchema.rememberPrefix(config, prefix))
  )

/**
 * The settings as a Schema encodes them: what `Config.Config.Wrap` maps.
 *
 * @since 0.1.0
 * @category models
 */
export type Encoded = Schema.Schema.Encoded<typeof SessionConfig>

/**
 * An object of `Config`s, one per setting (the object form of `Config.Config.Wrap`).
 *
 * @since 0.1.0
 * @category models
 */
export type Wrapped = Exclude<Config.Config.Wrap<Encoded>, Config.Config<unknown>>

/**
 * Settings from a `Config` of decoded settings, or from an object of
 * `Config`s per setting, decoded by the same Schema. A rejected value fails
 * with a `ConfigError` naming the setting.
 *
 * @since 0.1.0
 * @category config
 */
export const fromConfig = (config: Config.Config<SessionConfig> | Wrapped): Config.Config<SessionConfig> =>
  Config.isConfig(config)
    ? config
    : Config.mapOrFail(
      Config.unwrap(config),
      (input) => Either.mapLeft(decodeInput(input), (error) => ConfigError.InvalidData([error.field], error.detail))
    )

/**
 * The settings read from the environment under `REDIS_SESSION_*`; see
 * {@link configWithPrefix}.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<SessionConfig> = configWithPrefix()
