/**
 * Lazy import of sessions that connect-redis wrote (a JSON string at
 * `legacyPrefix + id`): on a miss, the legacy value becomes a session hash in
 * this library's layout, with the legacy key's remaining lifetime, and the
 * legacy key is deleted, all in one script so that concurrent first reads,
 * from any number of instances, import it once. A session whose express-session
 * cookie had a `maxAge` keeps it as its own lifetime, so that it slides as
 * connect-redis slid it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { SessionStoreError } from "../SessionError.js"
import * as Codec from "./codec.js"
import type * as Redis from "./redis.js"

// KEYS[1] the legacy key, KEYS[2] the session key; ARGV[1] the legacy text that was parsed,
// ARGV[2] the lifetime to use when the legacy key has none, ARGV[3..] the hash's fields and values.
// 1: imported; 0: already imported (or created meanwhile); -1: the legacy value changed or vanished.
const script = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then ttl = tonumber(ARGV[2]) end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('DEL', KEYS[1])
return 1
`

/**
 * What the store lends this module: a bounded, typed way to run commands.
 *
 * @internal
 */
export type Run = <A>(
  method: string,
  command: string,
  key: string,
  f: (client: Redis.Client) => Promise<A>
) => Effect.Effect<A, SessionStoreError>

/**
 * Imports the legacy session `id`, whose legacy value is `text`. Succeeds with `true` when
 * the session key may now hold it (imported now, or by someone else), so the
 * caller reads again; `false` when its value is not a JSON object (it is left
 * alone).
 *
 * @internal
 */
export const importSession = (options: {
  readonly run: Run
  readonly legacyKey: string
  readonly key: string
  readonly id: string
  /** The legacy key's value, read in the same transaction as the miss. */
  readonly text: string
  readonly ttl: number
  readonly now: number
}): Effect.Effect<boolean, SessionStoreError> =>
  Effect.gen(function*() {
    const { id, key, legacyKey, run, text } = options
    let data: unknown
    try {
      data = JSON.parse(text)
    } catch {
      return false
    }
    if (typeof data !== "object" || data === null || Array.isArray(data)) return false
    const { fields } = yield* Codec.encodeNew(id, data as Codec.SessionData, options.now, undefined, maxAgeOf(data))
    // Whatever the outcome (imported now, by another instance, or the legacy value changed or
    // expired meanwhile), the session key now says what there is: the caller reads it again.
    yield* run(
      "SessionStore.retrieve",
      "EVAL",
      legacyKey,
      (client) => client.eval(script, 2, legacyKey, key, text, String(options.ttl), ...fields.flat())
    )
    return true
  })

// The `maxAge` express-session's cookie was given (`originalMaxAge`, in ms), to the second, rounded
// up as connect-redis rounds its TTLs; `undefined` when there is none (a browser-session cookie).
const maxAgeOf = (data: object): number | undefined => {
  const cookie: unknown = (data as { readonly cookie?: unknown }).cookie
  const maxAge: unknown = typeof cookie === "object" && cookie !== null
    ? (cookie as { readonly originalMaxAge?: unknown }).originalMaxAge
    : undefined
  if (typeof maxAge !== "number" || !(maxAge > 0)) return undefined
  return Either.getOrUndefined(Codec.lifetimeMillis(Duration.seconds(Math.ceil(maxAge / 1000))))
}
