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
 * - Deadlines and the pruning bound are times on the clock of the Redis server
 *   that holds the index (`TIME`, in the scripts below), never an app
 *   instance's: instances whose clocks disagree by any amount neither hide
 *   each other's sessions nor keep pruned ones. On a Cluster the index and a
 *   session may sit on different nodes; their clocks may differ by up to
 *   {@link slackMillis} before a member could be pruned while its session lives.
 * - Every command here names one key, so each runs on the slot that holds
 *   it: the user's hash tag puts the set (and anything added per user later)
 *   in one slot on a Cluster, while the session keys stay where they are.
 */
import type { ChainableCommander } from "ioredis"
import * as Session from "./codec.js"
import type * as Redis from "./redis.js"

/**
 * How far apart the clocks of two Redis Cluster nodes (the index's and a
 * session's) may be before pruning could drop a live member; and how long (at
 * most `expire`) the index outlives the newest deadline it was given, which
 * covers a refresh that raced a rebind.
 *
 * @internal
 */
export const slackMillis = 60_000

// The server's time in milliseconds. Lua numbers are doubles, exact for integers far past 2^43 ms;
// tostring prints them with 14 significant digits, exact for milliseconds until the year 5138.
const redisNow = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

/**
 * Binds ARGV[1] to the index at KEYS[1] until the server's now + ARGV[2] ms
 * (the deadline is only ever raised), stretches the set's lifetime to ARGV[3]
 * ms, and with ARGV[4] = "1" prunes the members whose deadline is more than
 * {@link slackMillis} past.
 *
 * @internal
 */
export const bindScript = `${redisNow}
redis.call('ZADD', KEYS[1], 'GT', tostring(now + tonumber(ARGV[2])), ARGV[1])
if ARGV[4] == '1' then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. tostring(now - ${slackMillis})) end
redis.call('PEXPIRE', KEYS[1], ARGV[3], 'NX')
redis.call('PEXPIRE', KEYS[1], ARGV[3], 'GT')
return 1`

/**
 * Prunes the index at KEYS[1] as {@link bindScript} does and lists it: the
 * server's now, then the members with their deadlines (`ZRANGE … WITHSCORES`).
 *
 * @internal
 */
export const listScript = `${redisNow}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. tostring(now - ${slackMillis}))
return {tostring(now), redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}`

/**
 * The index key of `user`. The braces make the user a hash tag (unless the
 * prefix already has one), and `:` never occurs in a session id, so an index
 * key is never a session key.
 *
 * @internal
 */
export const keyOf = (prefix: string, user: string): string => `${prefix}user:{${user}}`

/**
 * Queues what binds `id` to the index at `key` for `ttl` from now (the
 * server's now), on a transaction that also writes the session: the member,
 * its deadline (only ever raised), the set's lifetime, and, with `prune`, the
 * pruning of members whose deadline has passed. Returns how many replies it
 * queued.
 *
 * @internal
 */
export const bind = (commands: ChainableCommander, key: string, id: string, ttl: number, prune: boolean): number => {
  commands.eval(bindScript, 1, key, id, ttl, lifetimeOf(ttl), prune ? "1" : "0")
  return 1
}

/**
 * What {@link bind} does, as plain commands on the caller's clock: for a
 * server that refuses scripts only, where deadlines are the app instance's
 * time `now` (so a clock skew between instances bigger than
 * {@link slackMillis} could prune a live member). Returns how many replies it
 * queued.
 *
 * @internal
 */
export const bindWithoutScripts = (
  commands: ChainableCommander,
  key: string,
  id: string,
  ttl: number,
  now: number,
  prune: boolean
): number => {
  commands.zadd(key, "GT", now + ttl, id)
  if (prune) commands.zremrangebyscore(key, "-inf", `(${now - slackMillis}`)
  // A set made by this ZADD has no TTL, and GT treats that as infinite: NX sets it first.
  const lifetime = lifetimeOf(ttl)
  commands.pexpire(key, lifetime, "NX").pexpire(key, lifetime, "GT")
  return prune ? 4 : 3
}

/**
 * The lifetime an index gets at each bind, for sessions of lifetime `ttl`: it
 * outlives every member it must list.
 *
 * @internal
 */
export const lifetimeOf = (ttl: number): number => ttl + Math.min(ttl, slackMillis)

/**
 * {@link listScript} as plain commands on the caller's clock `now`, where
 * scripts are refused; the same reply.
 *
 * @internal
 */
export const listWithoutScripts = async (client: Redis.Client, key: string, now: number): Promise<unknown> => {
  const replies = await client.multi().zremrangebyscore(key, "-inf", `(${now - slackMillis}`).zrange(
    key,
    "0",
    "-1",
    "WITHSCORES"
  ).exec()
  return [String(now), replies?.[1]?.[1] ?? []]
}

/**
 * {@link destroyIfBound} as plain commands, where scripts are refused: a read, then the delete
 * (not atomic: a rebind landing between the two is not spared).
 *
 * @internal
 */
export const destroyIfBoundWithoutScripts = async (
  client: Redis.Client,
  key: string,
  user: string
): Promise<number> => {
  const [created, boundTo] = await client.hmget(key, Session.createdField, Session.userField)
  if (boundTo !== user) return 0
  await client.del(key)
  return created === null ? 0 : 1
}

/**
 * The reply of {@link listScript}: the members, with their deadlines moved
 * from the server's clock to `now`, the caller's (so that times derived from
 * them, such as `lastActiveAt`, are on the caller's clock as the others are).
 *
 * @internal
 */
export const listed = (
  reply: unknown,
  now: number
): ReadonlyArray<{ readonly id: string; readonly deadline: number }> => {
  if (!Array.isArray(reply) || reply.length < 2) return []
  const offset = now - Number(reply[0])
  return members(reply[1]).map(({ deadline, id }) => ({ id, deadline: deadline + offset }))
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
