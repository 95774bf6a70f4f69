/**
 * The per-user index of the Redis backend: which sessions belong to a user.
 *
 * Layout: one sorted set per user at `prefix + "user:{" + user + "}"`. Its
 * members are session ids; a member's score is a deadline, an upper bound on
 * when that session expires (the time of its last write or refresh plus
 * `expire`). The session hash itself holds the binding (`$u`), which is the
 * truth: the index may list a session that is gone or was rebound (readers
 * check each one), but never misses a live session bound to its user, and it
 * outlives every member it must list.
 *
 * - Binding (create, rebind) and every refresh of a bound session add the
 *   member with `ZADD GT` and stretch the set's TTL (`PEXPIRE NX`, then
 *   `PEXPIRE GT`) to `expire` plus a slack (at most a minute), in the same transaction as the
 *   session write. The set thus lives as long as its longest-lived member.
 * - Members whose deadline is past are dropped by `ZREMRANGEBYSCORE` on every
 *   bind and read: their sessions are certainly gone, so no member is dropped
 *   while its session lives, and the set never grows past the sessions of
 *   one `expire` window.
 * - Every command here names one key, so each runs on the slot that holds
 *   it: the user's hash tag puts the set (and anything added per user later)
 *   in one slot on a Cluster, while the session keys stay where they are.
 */
import type { ChainableCommander } from "ioredis"
import * as Session from "./codec.js"

/**
 * How far apart the clocks of two app instances may be before pruning could
 * drop a live member; and how long (at most `expire`) the index outlives the
 * newest deadline it was given, which covers a refresh that raced a rebind.
 *
 * @internal
 */
export const slackMillis = 60_000

/**
 * The index key of `user`. The braces make the user a hash tag (unless the
 * prefix already has one), and `:` never occurs in a session id, so an index
 * key is never a session key.
 *
 * @internal
 */
export const keyOf = (prefix: string, user: string): string => `${prefix}user:{${user}}`

/**
 * Queues what binds `id` to the index at `key` until at least `deadline`, on
 * a transaction that also writes the session: the member, its deadline (only
 * ever raised), the set's lifetime, and, when `now` is given, the pruning of
 * members whose deadline has passed. Returns how many replies it queued.
 *
 * @internal
 */
export const bind = (
  commands: ChainableCommander,
  key: string,
  id: string,
  deadline: number,
  ttl: number,
  now?: number
): number => {
  commands.zadd(key, "GT", deadline, id)
  if (now !== undefined) commands.zremrangebyscore(key, "-inf", `(${pruneBefore(now)}`)
  // A set made by this ZADD has no TTL, and GT treats that as infinite: NX sets it first.
  const lifetime = lifetimeOf(ttl)
  commands.pexpire(key, lifetime, "NX").pexpire(key, lifetime, "GT")
  return now === undefined ? 3 : 4
}

/**
 * The lifetime an index gets at each bind, for sessions of lifetime `ttl`.
 *
 * @internal
 */
export const lifetimeOf = (ttl: number): number => ttl + Math.min(ttl, slackMillis)

/**
 * Members whose deadline is before this, at `now`, are certainly gone.
 *
 * @internal
 */
export const pruneBefore = (now: number): number => now - slackMillis

/**
 * Queues the pruning and listing of an index, and returns how to read the
 * members (with their deadlines) from the replies.
 *
 * @internal
 */
export const list = (commands: ChainableCommander, key: string, now: number): void => {
  commands.zremrangebyscore(key, "-inf", `(${now - slackMillis}`).zrange(key, "0", "-1", "WITHSCORES")
}

/**
 * The members of a `ZRANGE … WITHSCORES` reply, as RESP2 (a flat list) or
 * RESP3 (pairs) gives them.
 *
 * @internal
 */
export const members = (reply: unknown): ReadonlyArray<{ readonly id: string; readonly deadline: number }> => {
  if (!Array.isArray(reply)) return []
  const out: Array<{ id: string; deadline: number }> = []
  if (reply.length > 0 && Array.isArray(reply[0])) {
    for (const pair of reply as ReadonlyArray<readonly [unknown, unknown]>) {
      out.push({ id: String(pair[0]), deadline: Number(pair[1]) })
    }
  } else {
    for (let i = 0; i + 1 < reply.length; i += 2) out.push({ id: String(reply[i]), deadline: Number(reply[i + 1]) })
  }
  return out
}

/**
 * Deletes a session only if it is still bound to the user (ARGV[1]), and
 * tells whether it was live (1) or not (0). A script, so that a session
 * rebound meanwhile is spared; it names one key, so it runs on any Cluster.
 * Not a hot path: a script's write is announced to its own instance too,
 * which is what revocation wants anyway.
 *
 * @internal
 */
export const destroyIfBound = `local f = redis.call('HMGET', KEYS[1], '${Session.createdField}', '${Session.userField}')
if f[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if f[1] then return 1 end
return 0`

/**
 * What `sessionsOf` reports of one member, given what the session hash
 * holds (`created`, `user` from HMGET) and its remaining lifetime (PTTL);
 * `undefined` when the member is not a live session of `user`.
 *
 * @internal
 */
export const info = (options: {
  readonly id: string
  readonly user: string
  readonly deadline: number
  readonly created: string | null
  readonly boundTo: string | null
  readonly remaining: number
  readonly now: number
  readonly ttl: number
  readonly absolute: number | undefined
}): Session.SessionInfo | undefined => {
  const { created, now } = options
  if (created === null || options.boundTo !== options.user || options.remaining === -2) return undefined
  const createdAt = Number(created)
  if (!Number.isFinite(createdAt)) return undefined
  if (options.absolute !== undefined && createdAt + options.absolute <= now) return undefined
  const expiresAt = options.remaining < 0 ? Number.POSITIVE_INFINITY : now + options.remaining
  // The deadline was set at the last write or refresh, `expire` ahead of it.
  const lastActiveAt = Math.min(now, Math.max(createdAt, options.deadline - options.ttl))
  return { id: options.id, createdAt, expiresAt, lastActiveAt }
}

/**
 * Sorts infos oldest first (ties by id), as both backends list them.
 *
 * @internal
 */
export const oldestFirst = (a: Session.SessionInfo, b: Session.SessionInfo): number =>
  a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
