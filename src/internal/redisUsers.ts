/**
 * The user index operations of the Redis store: listing a user's sessions
 * and signing them all out (see `userIndex.ts` for the layout).
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { SessionStore } from "../SessionStore.js"
import * as Session from "./codec.js"
import type { Parts } from "./redisParts.js"
import * as Tracing from "./tracing.js"
import * as UserIndex from "./userIndex.js"

// How many rounds of listing and deleting a destroyAll makes at most.
const maxRevocationRounds = 10

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

  // The index, pruned and listed in one script on its own key, on the server's clock (see UserIndex).
  const membersOf = (method: string, user: string, now: number) =>
    Effect.map(
      parts.evalOr(method, indexOf(user), UserIndex.listScript, [], (client) =>
        UserIndex.listWithoutScripts(client, indexOf(user), now)),
      (reply) =>
        UserIndex.listed(reply, now)
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
              client.hmget(keyOf(id), Session.createdField, Session.userField, Session.expireField),
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

  // One round: the members not yet tried, deleted where still bound to `user`; how many were live
  // (-1: none left to try).
  const revokeRound = Effect.fnUntraced(function*(user: string, except: string | undefined, tried: Set<string>) {
    const index = indexOf(user)
    const members = (yield* membersOf("SessionStore.destroyAll", user, yield* Clock.currentTimeMillis))
      .map(({ id }) => id)
      .filter((id) => id !== except && !tried.has(id))
    if (members.length === 0) return -1
    for (const id of members) tried.add(id)
    const drop = Effect.forEach(members, cache.remove, { discard: true })
    yield* drop
    const outcomes = yield* Effect.forEach(
      members,
      (id) =>
        parts.evalOr(
          "SessionStore.destroyAll",
          keyOf(id),
          UserIndex.destroyIfBound,
          [user],
          (client) => UserIndex.destroyIfBoundWithoutScripts(client, keyOf(id), user)
        ),
      { concurrency: "unbounded" }
    )
    // A read that started before the deletions may have been answered after them (see destroy).
    yield* drop
    const destroyed = members.filter((_, i) => outcomes[i] === 1)
    // Ids are random and never reused, so these members can only be stale from now on.
    if (destroyed.length > 0) {
      yield* run("SessionStore.destroyAll", "ZREM", index, (client) => client.zrem(index, ...destroyed))
    }
    return destroyed.length
  })

  // Rounds until a listing holds no member not yet tried. A regenerate lists its new id in the index
  // before it deletes the old one (see redisWrites' regenerate): if a round's deletion found the old
  // id already moved, the new id was listed before that deletion, and so is in the next round's listing.
  const destroyAll: Users["destroyAll"] = Effect.fnUntraced(function*(user, options) {
    const tried = new Set<string>()
    let destroyed = 0
    for (let round = 0; round < maxRevocationRounds; round++) {
      const count = yield* revokeRound(user, options?.except, tried)
      if (count < 0) break
      destroyed += count
    }
    return destroyed
  }, Tracing.span("SessionStore.destroyAll"))

  return { sessionsOf, destroyAll }
}
