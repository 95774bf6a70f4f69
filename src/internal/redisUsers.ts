/**
 * The user index operations of the Redis store: listing a user's sessions
 * and signing them all out (see `userIndex.ts` for the layout).
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { SessionStore } from "../SessionStore.js"
import type * as Session from "./codec.js"
import * as Codec from "./codec.js"
import type { Parts } from "./redisParts.js"
import * as Tracing from "./tracing.js"
import * as UserIndex from "./userIndex.js"

/**
 * The user index operations.
 *
 * @internal
 */
export interface Users {
  readonly sessionsOf: SessionStore["sessionsOf"]
  readonly destroyAll: SessionStore["destroyAll"]
}

/**
 * Makes the user index operations.
 *
 * @internal
 */
export const make = (parts: Parts): Users => {
  const { absolute, cache, indexOf, keyOf } = parts
  const { run } = parts.connection

  // The index, pruned and listed in one transaction on its own key.
  const membersOf = (method: string, user: string, now: number) =>
    Effect.map(
      parts.batch(method, "MULTI", indexOf(user), (multi) => UserIndex.list(multi, indexOf(user), now)),
      (replies) => UserIndex.members(replies[1])
    )

  // Per member, commands on its own key, sent at once: one round trip on one server, one per node on
  // a Cluster (where a pipeline or transaction may not span slots).
  const sessionsOf: Users["sessionsOf"] = Effect.fnUntraced(function*(user) {
    const members = yield* membersOf("SessionStore.sessionsOf", user, yield* Clock.currentTimeMillis)
    if (members.length === 0) return []
    const read = yield* run(
      "SessionStore.sessionsOf",
      "HMGET",
      indexOf(user),
      (client) =>
        Promise.all(
          members.map(({ id }) =>
            Promise.all([
              client.hmget(keyOf(id), Codec.createdField, Codec.userField, Codec.expireField),
              client.pttl(keyOf(id))
            ])
          )
        )
    )
    const now = yield* Clock.currentTimeMillis
    const infos: Array<Session.SessionInfo> = []
    for (const [i, { deadline, id }] of members.entries()) {
      const [[created, boundTo, expire], remaining] = read[i]!
      const info = UserIndex.info({
        id,
        user,
        deadline,
        created,
        boundTo,
        remaining,
        now,
        ttl: parts.storedLife(expire),
        absolute
      })
      if (info !== undefined) infos.push(info)
    }
    return infos.sort(UserIndex.oldestFirst)
  }, Tracing.span("SessionStore.sessionsOf"))

  const destroyAll: Users["destroyAll"] = Effect.fnUntraced(function*(user, options) {
    const except = options?.except
    const index = indexOf(user)
    const members = (yield* membersOf("SessionStore.destroyAll", user, yield* Clock.currentTimeMillis))
      .map(({ id }) => id)
      .filter((id) => id !== except)
    if (members.length === 0) return 0
    const drop = Effect.forEach(members, cache.remove, { discard: true })
    yield* drop
    const outcomes = yield* run(
      "SessionStore.destroyAll",
      "EVAL",
      index,
      (client) =>
        Promise.all(members.map((id) => client.eval(UserIndex.destroyIfBound, 1, keyOf(id), user) as Promise<number>))
    )
    // A read that started before the deletions may have been answered after them (see destroy).
    yield* drop
    const destroyed = members.filter((_, i) => outcomes[i] === 1)
    // Ids are random and never reused, so these members can only be stale from now on.
    if (destroyed.length > 0) {
      yield* run("SessionStore.destroyAll", "ZREM", index, (client) => client.zrem(index, ...destroyed))
    }
    return destroyed.length
  }, Tracing.span("SessionStore.destroyAll"))

  return { sessionsOf, destroyAll }
}
