/**
 * What each session write sends to Redis: one `EVALSHA` of a script loaded
 * once, on the session's own key (and, on one server, the user index's key),
 * or, where the server refuses scripts, the same steps as a `MULTI`.
 *
 * Why every script ends with a read of the session key: the near-cache uses
 * per-key (default-mode) tracking with NOLOOP, and Redis forgets a client's
 * interest in a key whenever the key is written, the writer's own write
 * included. A write that ends with a read leaves the writer tracking the key,
 * so the next foreign write reaches its cache. Checked on Redis 7.0.15.
 *
 * Why every reply carries the version: Redis announces a foreign write on
 * another connection than the one our reply comes back on, in no fixed
 * order, so the reply itself must tell whether anyone else wrote since the
 * session was read. When someone did, the script sends the whole hash back,
 * and the cache is filled from that instead of a second read.
 */
import type { ChainableCommander } from "ioredis"
import { createHash } from "node:crypto"
import { createdField, userField, versionField } from "./codec.js"
import type * as Redis from "./redis.js"
import * as UserIndex from "./userIndex.js"

/**
 * A Lua script and its SHA-1, as `EVALSHA` names it.
 *
 * @internal
 */
export interface Script {
  readonly name: string
  readonly lua: string
  readonly sha: string
}

const script = (name: string, lua: string): Script => ({
  name,
  lua,
  sha: createHash("sha1").update(lua).digest("hex")
})

// Lua's unpack puts every value on the C stack, which holds about 8000: large writes go in chunks.
const chunked = `
local function each(command, key, from, to, width)
  local step = 1000 * width
  for i = from, to, step do
    redis.call(command, key, unpack(ARGV, i, math.min(i + step - 1, to)))
  end
end`

// The index part, run only when KEYS[2] is given (one server: both keys in one script). The same
// steps as UserIndex.bindScript, on the server's clock: the member's deadline (now + ARGV[at + 1])
// only ever rises, the set outlives its members, and with ARGV[at + 3] "1" long-dead members go.
const bindIndex = `
local function bind(at)
  local key = KEYS[2]
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', key, 'GT', tostring(now + tonumber(ARGV[at + 1])), ARGV[at])
  if ARGV[at + 3] == '1' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. tostring(now - ${UserIndex.slackMillis}))
  end
  redis.call('PEXPIRE', key, ARGV[at + 2], 'NX')
  redis.call('PEXPIRE', key, ARGV[at + 2], 'GT')
end`

// What a write answers, read last so that the key stays tracked: the version alone when it is the
// one the caller expects, else the whole hash.
const answer = `
local function answer(expected)
  local v = redis.call('HGET', KEYS[1], '${versionField}')
  if expected == '*' or (v or '0') == expected then return v or '0' end
  return redis.call('HGETALL', KEYS[1])
end`

/**
 * Creates a session: replaces what is stored under a given id (ARGV[1] "1"),
 * writes its fields and lifetime, and binds it to the user index (KEYS[2]).
 *
 * ARGV: replace, lifetime, field count n, n field/value pairs, then the index
 * part (member, deadline, index lifetime, prune bound or '').
 *
 * @internal
 */
export const create: Script = script(
  "create",
  `${chunked}${bindIndex}
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) end
local n = tonumber(ARGV[3])
each('HSET', KEYS[1], 4, 3 + 2 * n, 2)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if KEYS[2] then bind(4 + 2 * n) end
return redis.call('HGET', KEYS[1], '${versionField}')`
)

/**
 * Writes a delta: nothing when the session is gone (no creation field), else
 * the set and removed fields, the version bump and the lifetime, and the
 * index part. Answers nil (gone), the version (nobody else wrote), or the
 * whole hash.
 *
 * ARGV: lifetime, expected version, set count n, n pairs, remove count m, m
 * fields, then the index part.
 *
 * @internal
 */
export const flush: Script = script(
  "flush",
  `${chunked}${bindIndex}${answer}
if redis.call('HEXISTS', KEYS[1], '${createdField}') == 0 then return false end
local n = tonumber(ARGV[3])
each('HSET', KEYS[1], 4, 3 + 2 * n, 2)
local at = 4 + 2 * n
local m = tonumber(ARGV[at])
each('HDEL', KEYS[1], at + 1, at + m, 1)
redis.call('HINCRBY', KEYS[1], '${versionField}', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if KEYS[2] then bind(at + m + 1) end
return answer(tostring(tonumber(ARGV[2]) + 1))`
)

/**
 * Refreshes a live session's lifetime (and its index deadline): nil when it
 * is gone; the version when it is `expected` (or `expected` is "*"); else
 * the whole hash.
 *
 * ARGV: lifetime, expected version, then the index part.
 *
 * @internal
 */
export const refresh: Script = script(
  "refresh",
  `${bindIndex}${answer}
if redis.call('HEXISTS', KEYS[1], '${createdField}') == 0 then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if KEYS[2] then bind(3) end
return answer(ARGV[2])`
)

/**
 * The second step of a regenerate (see `redisWrites.ts`): deletes the old
 * session, but only while it is alive and, unless ARGV[1] is "login", bound
 * as the new one was (ARGV[2]: "" for no user, "=" + user otherwise).
 * 1: moved; 0: gone (destroyed, revoked or expired); {2, binding}: bound
 * otherwise now. Not a hot path, so sent as EVAL.
 *
 * @internal
 */
export const moveOut = `local f = redis.call('HMGET', KEYS[1], '${createdField}', '${userField}')
if not f[1] then return 0 end
if ARGV[1] ~= 'login' then
  local bound = f[2] and ('=' .. f[2]) or ''
  if bound ~= ARGV[2] then return {2, bound} end
end
redis.call('DEL', KEYS[1])
return 1`

/**
 * {@link moveOut} as plain commands, where scripts are refused: a read, then
 * the delete. Not atomic: a revoke landing between the two is undone by the
 * move (the new session lives), which is why servers that refuse scripts are
 * only a fallback.
 *
 * @internal
 */
export const moveOutWithoutScripts = async (
  client: Redis.Client,
  key: string,
  login: boolean,
  binding: string
): Promise<unknown> => {
  const [created, user] = await client.hmget(key, createdField, userField)
  if (created === null) return 0
  const bound = user === null ? "" : `=${user}`
  if (!login && bound !== binding) return [2, bound]
  await client.del(key)
  return 1
}

/**
 * Every script, to load at start.
 *
 * @internal
 */
export const all: ReadonlyArray<Script> = [create, flush, refresh]

/**
 * The index part of a write's arguments: `undefined` for an unbound session.
 *
 * @internal
 */
export interface IndexArgs {
  readonly key: string
  readonly member: string
  /** The session lifetime: the member's deadline is that far from the server's now. */
  readonly ttl: number
  /** Whether members whose deadline is long past are pruned (see UserIndex.bind). */
  readonly prune: boolean
  /** The caller's clock, for the deadlines of a server that refuses scripts only. */
  readonly now: number
}

/**
 * What a script answered: the session is gone, still at the version the
 * caller expected, or at another one (with the whole hash).
 *
 * @internal
 */
export type Answer =
  | { readonly _tag: "Gone" }
  | { readonly _tag: "Expected"; readonly version: number }
  | { readonly _tag: "Changed"; readonly fields: Record<string, string> }

const gone: Answer = Object.freeze({ _tag: "Gone" })

/**
 * Reads a script's (or the fallback's) reply.
 *
 * @internal
 */
export const answerOf = (reply: unknown): Answer => {
  if (reply === null || reply === undefined) return gone
  if (Array.isArray(reply)) {
    const fields: Record<string, string> = {}
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const field = String(reply[i])
      // "__proto__" must stay an ordinary own key (see the codec).
      if (field === "__proto__") {
        Object.defineProperty(fields, field, {
          value: String(reply[i + 1]),
          enumerable: true,
          writable: true,
          configurable: true
        })
      } else fields[field] = String(reply[i + 1])
    }
    return { _tag: "Changed", fields }
  }
  return { _tag: "Expected", version: Number(reply) }
}

/**
 * The index part of a script's arguments (after the session's own).
 *
 * @internal
 */
export const indexArgs = (index: IndexArgs): ReadonlyArray<string | number> => [
  index.member,
  index.ttl,
  UserIndex.lifetimeOf(index.ttl),
  index.prune ? "1" : "0"
]

/**
 * Arguments of {@link create}.
 *
 * @internal
 */
export const createArgs = (
  replace: boolean,
  lifetime: number,
  fields: ReadonlyArray<readonly [string, string]>
): Array<string | number> => [replace ? 1 : 0, lifetime, fields.length, ...fields.flat()]

/**
 * Arguments of {@link flush}.
 *
 * @internal
 */
export const flushArgs = (
  lifetime: number,
  expected: number,
  set: ReadonlyArray<readonly [string, string]>,
  remove: ReadonlyArray<string>
): Array<string | number> => [lifetime, expected, set.length, ...set.flat(), remove.length, ...remove]

/**
 * Arguments of {@link refresh}; `expected` "*" asks for the version whatever it is.
 *
 * @internal
 */
export const refreshArgs = (lifetime: number, expected: number | "*"): Array<string | number> => [lifetime, expected]

/**
 * Whether an error says the server refuses scripts altogether: an ACL
 * without `@scripting` (NOPERM), or a proxy that does not know the command.
 * Not NOSCRIPT, which only means the script must be sent once more.
 *
 * @internal
 */
export const isRefused = (error: unknown): boolean =>
  error instanceof Error && /^(NOPERM|ERR unknown command)/i.test(error.message) &&
  /eval|script/i.test(error.message)

const isNoScript = (error: unknown): boolean => error instanceof Error && error.message.startsWith("NOSCRIPT")

/**
 * Runs a script by its SHA-1, and by its text once when the server does not
 * have it yet (after a restart, a failover, or on a Cluster node new to it).
 *
 * @internal
 */
export const evaluate = (
  client: Redis.Client,
  s: Script,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
): Promise<unknown> =>
  client.evalsha(s.sha, keys.length, ...keys, ...args).catch((error: unknown) =>
    isNoScript(error) ? client.eval(s.lua, keys.length, ...keys, ...args) : Promise.reject(error)
  )

/**
 * The fallback where scripts are refused: the same steps queued on a `MULTI`,
 * ending with the same read-back. A flush of a session that is gone cannot be
 * refused inside a `MULTI`: it leaves a hash without the creation field,
 * which readers treat as absent and which expires with the lifetime given;
 * `HEXISTS`, queued first, tells the caller. The replies are read by
 * {@link fallbackAnswer}.
 *
 * @internal
 */
export const fallback = {
  create: (
    multi: ChainableCommander,
    key: string,
    replace: boolean,
    lifetime: number,
    fields: ReadonlyArray<readonly [string, string]>
  ): void => {
    if (replace) multi.del(key)
    multi.hset(key, ...fields.flat()).pexpire(key, lifetime).hget(key, versionField)
  },
  flush: (
    multi: ChainableCommander,
    key: string,
    lifetime: number,
    set: ReadonlyArray<readonly [string, string]>,
    remove: ReadonlyArray<string>
  ): void => {
    multi.hexists(key, createdField)
    if (set.length > 0) multi.hset(key, ...set.flat())
    if (remove.length > 0) multi.hdel(key, ...remove)
    multi.hincrby(key, versionField, 1).pexpire(key, lifetime).hgetall(key)
  },
  refresh: (multi: ChainableCommander, key: string, lifetime: number): void => {
    multi.hexists(key, createdField).pexpire(key, lifetime).hgetall(key)
  }
}

/**
 * Reads the replies of a fallback `flush` or `refresh` (HEXISTS first, the
 * hash last) as the scripts would have answered.
 *
 * @internal
 */
export const fallbackAnswer = (replies: ReadonlyArray<unknown>, expected: number | "*"): Answer => {
  if (replies[0] !== 1) return gone
  const fields = replies[replies.length - 1] as Record<string, string>
  const version = fields[versionField] ?? "0"
  return expected === "*" || version === String(expected)
    ? { _tag: "Expected", version: Number(version) }
    : { _tag: "Changed", fields }
}
