/**
 * The session store service: create, retrieve, flush, destroy and touch
 * sessions, in Redis with a near-cache, or in memory.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import * as EnvConfig from "./internal/envConfig.js"
import * as memoryStore from "./internal/memoryStore.js"
import * as promiseStore from "./internal/promiseStore.js"
import * as redisStore from "./internal/redisStore.js"
import * as InternalSchema from "./internal/schema.js"
import type { Session, SessionData, SessionInfo } from "./Session.js"
import type * as SessionCache from "./SessionCache.js"
import * as SessionConfig from "./SessionConfig.js"
import type { RedisCommandError, RedisConnectionError, SessionStoreError } from "./SessionError.js"

/**
 * The operations of a session store. Every operation fails only with a
 * `SessionStoreError`, within the configured command timeout.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionStore {
  /** `"redis"` or `"memory"`. */
  readonly backend: "redis" | "memory"
  /** The sliding lifetime of a session that has none of its own (see `CreateOptions.expire`). */
  readonly expire: Duration.Duration
  /** The absolute lifetime of a session, counted from its creation; `undefined` when there is none. */
  readonly absoluteExpire: Duration.Duration | undefined
  /**
   * Makes a session and writes it at once, under a new random id (256 bits
   * from the CSPRNG), or under `options.id`, replacing any session stored
   * there (for ids made elsewhere, such as express-session's; they must be as
   * unguessable). A given id must be 16 to 128 characters of `A-Z a-z 0-9 - _`
   * (ours are 43, express-session's 32), or `create` fails with
   * `SessionEncodeError` (`field: "id"`) and writes nothing; the other
   * operations treat such an id as absent. With `options.user`, the session
   * is bound to that user (see {@link SessionStore.sessionsOf}); with
   * `options.expire`, it has its own sliding lifetime. Fails with
   * `SessionEncodeError` when a value has no JSON form, or when
   * `options.expire` is not a positive duration.
   */
  readonly create: (data?: SessionData, options?: CreateOptions) => Effect.Effect<Session, SessionStoreError>
  /**
   * Reads a session; `None` when absent or expired. Refreshes its lifetime
   * (sliding expiry) once a tenth of it has passed since the last refresh,
   * and then marks the session it returns `refreshed`.
   */
  readonly retrieve: (id: string) => Effect.Effect<Option.Option<Session>, SessionStoreError>
  /**
   * Writes the fields of `session.data` that differ from what the session was
   * read from, and refreshes its lifetime. A session that was destroyed or
   * expired meanwhile stays gone. A `user` that differs from the one the
   * session was read with rebinds it (`undefined` unbinds it), and an
   * `expire` that differs changes its lifetime (`undefined`: back to the
   * store's); the lifetime is refreshed with the one the session has then.
   */
  readonly flush: (session: Session) => Effect.Effect<void, SessionStoreError>
  /** Removes a session from the store and from every instance's cache. */
  readonly destroy: (id: string) => Effect.Effect<void, SessionStoreError>
  /**
   * Moves `session` to a new random id (against session fixation: on login and
   * on any change of privilege), atomically with respect to the store's other
   * operations on every instance: the new id exists only if `session.id` still
   * did at the moment of the move, and that id is then gone. The new session
   * holds `session.data`, written whole. It is bound to `options.user` when the
   * options have that property (`undefined` unbinds); otherwise to whichever
   * user the stored session is bound to at the moment of the move.
   *
   * `None` when the session had been destroyed, revoked (`destroyAll`) or had
   * expired by then: nothing is created, so a revoked session is never
   * brought back by a request that read it earlier. A "sign out everywhere"
   * that runs while the move does ends the new id too. On a failure the move
   * may or may not have happened, and the new id is deleted if it can be.
   */
  readonly regenerate: (
    session: Session,
    options?: RegenerateOptions
  ) => Effect.Effect<Option.Option<Session>, SessionStoreError>
  /** Refreshes a session's lifetime without rewriting its data. */
  readonly touch: (id: string) => Effect.Effect<void, SessionStoreError>
  /**
   * The live sessions bound to `user`, oldest first. A session that expired
   * or was destroyed is never listed, nor one rebound to another user.
   */
  readonly sessionsOf: (user: string) => Effect.Effect<ReadonlyArray<SessionInfo>, SessionStoreError>
  /**
   * Destroys every session bound to `user` but `options.except`, in the store
   * and in every instance's cache ("sign out everywhere"), and returns how
   * many it destroyed. A session rebound to another user meanwhile is spared.
   * A session that `regenerate` moves to a new id while this runs goes too:
   * the user's index is listed again after each round of deletions, until a
   * listing holds nothing new (at most ten rounds, against a flood of logins).
   */
  readonly destroyAll: (user: string, options?: DestroyAllOptions) => Effect.Effect<number, SessionStoreError>
  /** Checks that the backend answers. */
  readonly ping: Effect.Effect<void, SessionStoreError>
  /** The near-cache's counters (all zero for the in-memory backend, which needs no cache). */
  readonly cacheStats: Effect.Effect<SessionCache.Stats>
  /**
   * Runs `f` with the store's ioredis client, for what this library does not
   * do itself, as the seed's `redis` method allowed. The call is bounded by
   * `commandTimeout`, and its failures are typed and free of secrets. Fails
   * with `RedisCommandError` on the in-memory backend, which has no Redis,
   * and on Redis Cluster, where there is no single client to lend.
   * Keep your own keys outside the session `prefix`.
   */
  readonly redis: <A>(f: (client: Redis) => Promise<A>) => Effect.Effect<A, RedisConnectionError | RedisCommandError>
}

/**
 * Options of `create`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CreateOptions {
  /** The id to create the session under, instead of a new random one: 16 to 128 characters of `A-Z a-z 0-9 - _`. */
  readonly id?: string | undefined
  /** The user to bind the session to. */
  readonly user?: string | undefined
  /**
   * The session's own sliding lifetime, instead of the store's `expire`
   * ("remember me" for 30 days, or a short one for an anonymous visitor).
   * The same forms as the setting: a `Duration`, a string such as
   * `"30 days"`, or a number of seconds. It is stored with the session, so
   * every instance uses it; `absoluteExpire` still caps it. See
   * `Session.expire`.
   */
  readonly expire?: Duration.DurationInput | undefined
}

/**
 * Options of `regenerate`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegenerateOptions {
  /**
   * The user to bind the new session to (`undefined`: none), as on login. Without this property the
   * new session keeps the binding the stored session has when it moves.
   */
  readonly user?: string | undefined
}

/**
 * Options of `destroyAll`.
 *
 * @since 0.1.0
 * @category models
 */
export interface DestroyAllOptions {
  /** A session to spare, typically the caller's own ("sign out everywhere else"). */
  readonly except?: string | undefined
}

/**
 * The service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const SessionStore: Context.Tag<SessionStore, SessionStore> = Context.GenericTag<SessionStore>(
  "effect-session-redis/SessionStore"
)

/**
 * Options of the in-memory backend.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** The sliding lifetime of a session (default 900 s; a number means seconds, as for the Redis backend). */
  readonly expire?: Duration.DurationInput | undefined
  /** The absolute lifetime of a session, counted from its creation (default: none; a number means seconds). */
  readonly absoluteExpire?: Duration.DurationInput | undefined
}

/**
 * Makes an in-memory store with the same behaviour as the Redis one, for
 * development and tests. Expiry follows Effect's `Clock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: (options?: MemoryOptions) => Effect.Effect<SessionStore> = memoryStore.make

/**
 * The in-memory store as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<SessionStore> =>
  Layer.effect(SessionStore, makeMemory(options))

/**
 * Makes a Redis-backed store from decoded settings: connects, PINGs, turns on
 * cache invalidation, and closes everything when the scope closes. Fails with
 * `RedisConnectionError` when Redis cannot be reached within `connectTimeout`
 * or rejects the credentials, and with `SessionConfigError` (field
 * `database`) when the server has no such database.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  config: SessionConfig.SessionConfig
) => Effect.Effect<SessionStore, RedisConnectionError | SessionConfig.SessionConfigError, Scope.Scope> = redisStore.make

/**
 * The Redis-backed store, from plain settings (see `SessionConfig`). Fails with
 * `SessionConfigError` naming the rejected field, or `RedisConnectionError`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SessionStore } from "effect-session-redis"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* SessionStore.SessionStore
 *   const session = yield* store.create({ cart: [] })
 *   yield* store.flush({ ...session, data: { ...session.data, cart: ["book"] } })
 * })
 *
 * // In production: SessionStore.layer({ server: "127.0.0.1:6379" }); here, the in-memory backend.
 * program.pipe(Effect.provide(SessionStore.layerMemory()), Effect.runPromise)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  settings: SessionConfig.Input
): Layer.Layer<SessionStore, SessionConfig.SessionConfigError | RedisConnectionError> =>
  Layer.scoped(SessionStore, Effect.flatMap(SessionConfig.decode(settings), make))

/**
 * The Redis-backed store, with settings read through Effect `Config`. By
 * default they come from `REDIS_SESSION_*` (`SessionConfig.config`). Pass a
 * `Config` of decoded settings, or an object of `Config`s per setting (as
 * `Config.Config.Wrap`) to read other variables:
 * `layerConfig({ server: Config.string("REDIS_ADDR"), password: Config.redacted("REDIS_PASS") })`.
 * A rejected setting, and one the server rejects (a `database` it does not
 * have), fail with a `ConfigError` naming its variable. Settings read under a
 * prefix (`REDIS_SESSION` by default) log a warning, once, for each variable
 * under that prefix that is no setting, naming the closest one
 * (`REDIS_SESSION_EXPIRES`: did you mean `REDIS_SESSION_EXPIRE`?).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<SessionConfig.SessionConfig> | SessionConfig.Wrapped = SessionConfig.config
): Layer.Layer<SessionStore, ConfigError.ConfigError | RedisConnectionError> =>
  Layer.scoped(
    SessionStore,
    Effect.flatMap(SessionConfig.fromConfig(config), (settings) =>
      Effect.zipRight(
        EnvConfig.warnUnknownVariablesOf(settings),
        Effect.catchTag(
          make(settings),
          "SessionConfigError",
          (error) => Effect.fail(InternalSchema.toConfigError(settings, error))
        )
      ))
  )

/**
 * The store for async code that is not written with Effect: the same
 * operations, returning Promises. A failed operation rejects with its typed
 * error itself (`RedisConnectionError`, `RedisCommandError`, ...), so
 * `instanceof` and `_tag` work in a `catch`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Async {
  /** `"redis"` or `"memory"`. */
  readonly backend: "redis" | "memory"
  /** Makes a session and writes it at once; see `SessionStore.create`. */
  readonly create: (data?: SessionData, options?: CreateOptions) => Promise<Session>
  /** Reads a session; `undefined` when absent or expired. Refreshes its lifetime. */
  readonly retrieve: (id: string) => Promise<Session | undefined>
  /** Writes the fields that changed since the session was read, and refreshes its lifetime. */
  readonly flush: (session: Session) => Promise<void>
  /** Removes a session from the store and from every instance's cache. */
  readonly destroy: (id: string) => Promise<void>
  /** Moves a session to a new id; `undefined` when it was gone by then. See `SessionStore.regenerate`. */
  readonly regenerate: (session: Session, options?: RegenerateOptions) => Promise<Session | undefined>
  /** Refreshes a session's lifetime without rewriting its data. */
  readonly touch: (id: string) => Promise<void>
  /** The live sessions bound to `user`; see `SessionStore.sessionsOf`. */
  readonly sessionsOf: (user: string) => Promise<ReadonlyArray<SessionInfo>>
  /** Destroys every session bound to `user` but `options.except`; resolves to how many. */
  readonly destroyAll: (user: string, options?: DestroyAllOptions) => Promise<number>
  /** The Effect service underneath, to hand to Effect code that shares this store. */
  readonly store: SessionStore
  /** Closes the connections (QUIT). Calling it again returns the same Promise. */
  readonly close: () => Promise<void>
}

/**
 * Opens a Redis-backed store for async code: decodes the settings, connects
 * and PINGs, once. Rejects with `SessionConfigError` naming a rejected setting,
 * or `RedisConnectionError`. Call `close()` at shutdown.
 *
 * @example
 * ```ts
 * import { SessionStore } from "effect-session-redis"
 *
 * // SessionStore.open({ server: "127.0.0.1:6379" }) for Redis; openMemory() runs without it.
 * const store = await SessionStore.openMemory()
 * const session = await store.create({ cart: [] })
 * console.log((await store.retrieve(session.id))?.data) // { cart: [] }
 * await store.close()
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = (settings: SessionConfig.Input): Promise<Async> => promiseStore.open(layer(settings))

/**
 * Opens an in-memory store for async code (development and tests); see {@link open}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const openMemory = (options?: MemoryOptions): Promise<Async> => promiseStore.open(layerMemory(options))
