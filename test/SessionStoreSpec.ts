/**
 * The behaviour every SessionStore backend shares, as one spec that each
 * backend's test file registers with its own layer.
 */
import { expect, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SessionStore } from "../src/index.js"
import * as Session from "../src/internal/codec.js"
import { RedisServer } from "./support/index.js"

/** What the spec checks about the store it is given. */
export interface SpecOptions {
  readonly backend: "memory" | "redis"
  /** The lifetime the layer was built with, in seconds. */
  readonly expireSeconds?: number
}

const Store = SessionStore.SessionStore

/** Retrieves a session that must exist. */
export const retrieveSome = (id: string) =>
  Effect.flatMap(Store, (store) => store.retrieve(id)).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.dieMessage(`expected session ${id.slice(0, 6)}… to exist`),
      onSome: Effect.succeed
    }))
  )

/** The data of a session, or undefined when it is absent. */
export const dataOf = (id: string) =>
  Effect.flatMap(Store, (store) => store.retrieve(id)).pipe(
    Effect.map(Option.map((s) => s.data)),
    Effect.map(Option.getOrUndefined)
  )

/** A copy of `session` with `data` replaced the way callers do it: by spreading. */
export const withData = (session: Session.Session, data: Record<string, unknown>): Session.Session => ({
  ...session,
  data
})

/** A copy of `session` with some fields changed. */
export const change = (session: Session.Session, patch: Record<string, unknown>): Session.Session =>
  withData(session, { ...session.data, ...patch })

/** A copy of `session` without `key`. */
export const without = (session: Session.Session, key: string): Session.Session => {
  const { [key]: _, ...rest } = session.data
  return withData(session, rest)
}

/**
 * Registers the behavioural spec of a store as a describe block named `name`.
 * The layer is built once (live clock, no TestServices) for the block.
 */
export const sessionStoreSpec = (
  name: string,
  storeLayer: Layer.Layer<SessionStore.SessionStore, unknown>,
  options: SpecOptions
): void =>
  layer(storeLayer, { excludeTestServices: true })(name, (it) => {
    it.effect("reports its backend and lifetime, and answers ping", () =>
      Effect.gen(function*() {
        const store = yield* Store
        expect(store.backend).toBe(options.backend)
        if (options.expireSeconds !== undefined) {
          expect(Duration.toMillis(store.expire)).toBe(options.expireSeconds * 1000)
        }
        yield* store.ping
      }))

    it.effect("create gives a new random id and the data back; retrieve reads it", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const data = { user: "alice", n: 1, nested: { roles: ["admin"], deep: { ok: true } }, none: null }
        const created = yield* store.create(data)
        expect(Session.isId(created.id)).toBe(true)
        expect(created.data).toEqual(data)
        const other = yield* store.create(data)
        expect(other.id).not.toBe(created.id)
        const read = yield* retrieveSome(created.id)
        expect(read.id).toBe(created.id)
        expect(read.data).toEqual(data)
      }))

    it.effect("create without data makes an empty live session", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create()
        expect(created.data).toEqual({})
        expect((yield* retrieveSome(created.id)).data).toEqual({})
      }))

    it.effect("retrieve of an unknown or malformed id is None", () =>
      Effect.gen(function*() {
        const store = yield* Store
        expect(Option.isNone(yield* store.retrieve(Session.makeId()))).toBe(true)
        expect(Option.isNone(yield* store.retrieve("not-an-id"))).toBe(true)
        expect(Option.isNone(yield* store.retrieve(""))).toBe(true)
      }))

    // A given id becomes part of a Redis key: `user:{victim}` wrote over victim's index (issue 19,
    // point 6). Only ids in our alphabet, from express-session's 32 characters to our 43 and beyond, are taken.
    it.effect("create under a given id: ids of ours and express-session's are taken, others fail typed", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const victim = `victim-${Session.makeId()}`
        const bound = yield* store.create({ mine: true }, { user: victim })
        const express = "Ab3dEf6hIj9lMn0pQr5tUv7xYz1_-w2Q" // uid-safe(24), express-session's genid
        expect((yield* store.create({ a: 1 }, { id: express })).id).toBe(express)
        expect((yield* retrieveSome(express)).data).toEqual({ a: 1 })
        const ours = Session.makeId()
        expect((yield* store.create({ b: 2 }, { id: ours })).id).toBe(ours)
        for (
          const id of [
            `user:{${victim}}`,
            "user:{x}",
            "short",
            "",
            "a".repeat(129),
            "has space 0123456789",
            "ümlaut-0123456789"
          ]
        ) {
          const error = yield* Effect.flip(store.create({ evil: true }, { id, user: victim }))
          expect(error._tag, id).toBe("SessionEncodeError")
          expect(error._tag === "SessionEncodeError" && error.field, id).toBe("id")
          // Nothing of the refused id appears in the error.
          if (id.length > 6) expect(JSON.stringify(error), id).not.toContain(id)
        }
        // Other operations treat such an id as absent, and never touch what its key would name.
        for (const id of [`user:{${victim}}`, "short"]) {
          expect(Option.isNone(yield* store.retrieve(id))).toBe(true)
          yield* store.touch(id)
          yield* store.destroy(id)
          yield* store.flush({ id, data: { evil: true } })
        }
        expect((yield* store.sessionsOf(victim)).map((s) => s.id)).toEqual([bound.id])
        expect(yield* store.destroyAll(victim)).toBe(1)
      }))

    // The move behind HttpSession's regenerate and login (issue 19, point 1).
    it.effect("regenerate moves a session to a new id, keeping or setting its binding; a gone one stays gone", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const user = `mover-${Session.makeId()}`
        const old = yield* store.create({ a: 1 }, { user })
        const moved = Option.getOrThrow(yield* store.regenerate({ ...old, data: { a: 2 } }))
        expect(moved.id).not.toBe(old.id)
        expect(Session.isId(moved.id)).toBe(true)
        expect(moved).toMatchObject({ data: { a: 2 }, user })
        expect(Option.isNone(yield* store.retrieve(old.id))).toBe(true)
        expect(yield* retrieveSome(moved.id)).toMatchObject({ data: { a: 2 }, user })
        expect((yield* store.sessionsOf(user)).map((s) => s.id)).toEqual([moved.id])
        // login: bound to the given user (undefined unbinds), whatever the session was bound to.
        const other = `other-${Session.makeId()}`
        const bound = Option.getOrThrow(yield* store.regenerate(moved, { user: other }))
        expect((yield* retrieveSome(bound.id)).user).toBe(other)
        expect(yield* store.sessionsOf(user)).toEqual([])
        expect((yield* store.sessionsOf(other)).map((s) => s.id)).toEqual([bound.id])
        const anonymous = Option.getOrThrow(yield* store.regenerate(bound, { user: undefined }))
        expect((yield* retrieveSome(anonymous.id)).user).toBeUndefined()
        // Without a user, the binding the stored session has now, not the one it was read with.
        const read = yield* store.create({}, { user })
        yield* store.flush({ ...read, user: other })
        const kept = Option.getOrThrow(yield* store.regenerate(read))
        expect((yield* retrieveSome(kept.id)).user).toBe(other)
        // Destroyed, or revoked, meanwhile: nothing is created, whichever way it is asked.
        const doomed = yield* store.create({ secret: true }, { user })
        yield* store.destroy(doomed.id)
        expect(Option.isNone(yield* store.regenerate(doomed))).toBe(true)
        expect(Option.isNone(yield* store.regenerate(doomed, { user }))).toBe(true)
        const revoked = yield* store.create({ secret: true }, { user })
        expect(yield* store.destroyAll(user)).toBe(1)
        expect(Option.isNone(yield* store.regenerate(revoked))).toBe(true)
        expect(Option.isNone(yield* store.regenerate(revoked, { user }))).toBe(true)
        expect(yield* store.sessionsOf(user)).toEqual([])
        expect(Option.isNone(yield* store.regenerate({ id: "user:{x}", data: {} }))).toBe(true)
      }))

    it.effect("JSON values of every kind round trip", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const data = {
          int: 42,
          float: -1.5,
          big: Number.MAX_SAFE_INTEGER,
          t: true,
          f: false,
          nil: null,
          empty: "",
          unicode: "héllo ✓ 🍪 \u0000 \n \"quoted\"",
          array: [1, "two", [3], { four: 4 }],
          object: { a: { b: { c: [] } } },
          "key with spaces": 1,
          "ключ": "значение",
          "": "empty key",
          "a.b:c": "punctuated key"
        }
        const created = yield* store.create(data)
        expect((yield* retrieveSome(created.id)).data).toEqual(data)
      }))

    it.effect("keys starting with \"$\" round trip and do not collide with metadata", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const data = { $: 1, $c: "user c", $$c: 2, $$: [3], $created: { x: 1 }, "$ ": null }
        const created = yield* store.create(data)
        expect(created.data).toEqual(data)
        const read = yield* retrieveSome(created.id)
        expect(read.data).toEqual(data)
        // Changing and removing "$" keys through a delta flush.
        yield* store.flush(without(change(read, { $c: "changed", $new: true }), "$$c"))
        const { $$c: _, ...rest } = data
        expect(yield* dataOf(created.id)).toEqual({ ...rest, $c: "changed", $new: true })
        // Removing the user's "$c" does not kill the session.
        const again = yield* retrieveSome(created.id)
        yield* store.flush(without(again, "$c"))
        expect(Object.keys((yield* retrieveSome(created.id)).data)).not.toContain("$c")
      }))

    // A key named "__proto__" (JSON.parse of request input makes one an own property) must not turn
    // into the prototype of the session's data: `data.isAdmin` would then be true with no such field.
    it.effect("a \"__proto__\" key never becomes the prototype of session data", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const hostile = JSON.parse("{\"__proto__\": {\"isAdmin\": true}, \"name\": \"x\"}") as Record<string, unknown>
        const plain = yield* store.create({ name: "x" })
        yield* store.flush(withData(plain, hostile))
        const created = yield* store.create(hostile)
        for (const session of [created, yield* retrieveSome(created.id), yield* retrieveSome(plain.id)]) {
          expect(Object.getPrototypeOf(session.data)).toBe(Object.prototype)
          expect((session.data as Record<string, unknown>).isAdmin).toBeUndefined()
          expect(session.data.name).toBe("x")
        }
      }))

    it.effect("flush writes a changed field and keeps the others", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1, b: 2 })
        yield* store.flush(change(created, { a: 10, c: { three: 3 } }))
        expect(yield* dataOf(created.id)).toEqual({ a: 10, b: 2, c: { three: 3 } })
      }))

    it.effect("flush removes a field the caller left out, or set to undefined", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1, b: 2, c: 3 })
        yield* store.flush(without(created, "a"))
        expect(yield* dataOf(created.id)).toEqual({ b: 2, c: 3 })
        const read = yield* retrieveSome(created.id)
        yield* store.flush(change(read, { b: undefined }))
        const data = yield* dataOf(created.id)
        expect(data).toEqual({ c: 3 })
        expect(Object.keys(data!)).toEqual(["c"])
      }))

    it.effect("flush with no change keeps the session as it is", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1 })
        yield* store.flush(created)
        yield* store.flush({ ...created })
        expect(yield* dataOf(created.id)).toEqual({ a: 1 })
      }))

    it.effect("a value replaced by an equal copy is still equal after flush", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ obj: { x: [1, 2] } })
        yield* store.flush(change(created, { obj: { x: [1, 2] } }))
        expect(yield* dataOf(created.id)).toEqual({ obj: { x: [1, 2] } })
      }))

    it.effect("two copies changing different fields both keep their change (sequential)", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ cart: [], csrf: "t0", user: "u" })
        const first = yield* retrieveSome(created.id)
        const second = yield* retrieveSome(created.id)
        yield* store.flush(change(first, { cart: ["apple"] }))
        yield* store.flush(change(second, { csrf: "t1" }))
        expect(yield* dataOf(created.id)).toEqual({ cart: ["apple"], csrf: "t1", user: "u" })
      }))

    it.effect("two copies changing different fields both keep their change (concurrent)", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ user: "u" })
        const copies = yield* Effect.all(Array.from({ length: 8 }, () => retrieveSome(created.id)), {
          concurrency: "unbounded"
        })
        yield* Effect.all(copies.map((copy, i) => store.flush(change(copy, { [`f${i}`]: i }))), {
          concurrency: "unbounded"
        })
        const expected: Record<string, unknown> = { user: "u" }
        copies.forEach((_, i) => (expected[`f${i}`] = i))
        expect(yield* dataOf(created.id)).toEqual(expected)
      }))

    it.effect("one copy removing a field and another adding one: both apply", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ flash: "hi", user: "u" })
        const first = yield* retrieveSome(created.id)
        const second = yield* retrieveSome(created.id)
        yield* store.flush(without(first, "flash"))
        yield* store.flush(change(second, { visits: 1 }))
        expect(yield* dataOf(created.id)).toEqual({ user: "u", visits: 1 })
      }))

    it.effect("a second flush from the same old copy does not undo the first", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1, b: 1 })
        yield* store.flush(change(created, { a: 2 }))
        yield* store.flush(change(created, { b: 2 }))
        expect(yield* dataOf(created.id)).toEqual({ a: 2, b: 2 })
      }))

    it.effect("the same field changed by two copies: the last flush wins", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ n: 0 })
        const first = yield* retrieveSome(created.id)
        const second = yield* retrieveSome(created.id)
        yield* store.flush(change(first, { n: 1 }))
        yield* store.flush(change(second, { n: 2 }))
        expect(yield* dataOf(created.id)).toEqual({ n: 2 })
      }))

    it.effect("a session the store never produced is written whole", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1, b: 2 })
        yield* store.flush({ id: created.id, data: { b: 3, c: 4 } })
        expect(yield* dataOf(created.id)).toEqual({ b: 3, c: 4 })
      }))

    it.effect("flush never creates a session that does not exist", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const id = Session.makeId()
        yield* store.flush({ id, data: { a: 1 } })
        expect(Option.isNone(yield* store.retrieve(id))).toBe(true)
      }))

    it.effect("destroy removes the session; destroying twice or an unknown id is fine", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1 })
        const kept = yield* store.create({ b: 1 })
        yield* retrieveSome(created.id)
        yield* store.destroy(created.id)
        expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
        yield* store.destroy(created.id)
        yield* store.destroy(Session.makeId())
        expect((yield* retrieveSome(kept.id)).data).toEqual({ b: 1 })
      }))

    it.effect("no resurrection: a stale copy flushed after destroy stays gone", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1 })
        const stale = yield* retrieveSome(created.id)
        yield* store.destroy(created.id)
        yield* store.flush(change(stale, { a: 2, b: 3 }))
        expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
        // Not even when the stale copy writes a user key named like the metadata, or is written whole.
        yield* store.flush(change(stale, { $c: Date.now() }))
        yield* store.flush({ id: created.id, data: { $c: 1, a: 1 } })
        yield* store.touch(created.id)
        expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
      }))

    it.effect("no resurrection under concurrency: destroy racing flushes", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: 1 })
        const copies = yield* Effect.all([retrieveSome(created.id), retrieveSome(created.id), retrieveSome(created.id)])
        yield* Effect.all(
          [store.destroy(created.id), ...copies.map((copy, i) => store.flush(change(copy, { [`k${i}`]: i })))],
          { concurrency: "unbounded" }
        )
        // Whatever order they ran in, the destroy came last for some flushes: after all settle, a
        // further stale flush must not bring it back.
        yield* store.destroy(created.id)
        yield* Effect.all(copies.map((copy) => store.flush(change(copy, { late: true }))), { concurrency: "unbounded" })
        expect(Option.isNone(yield* store.retrieve(created.id))).toBe(true)
      }))

    it.effect("touch keeps the data; touching an unknown id creates nothing", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ a: [1] })
        yield* store.touch(created.id)
        expect((yield* retrieveSome(created.id)).data).toEqual({ a: [1] })
        const id = Session.makeId()
        yield* store.touch(id)
        expect(Option.isNone(yield* store.retrieve(id))).toBe(true)
      }))

    it.effect("returned data is deeply frozen; mutating it throws and changes nothing", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ user: { name: "alice", roles: ["user"] }, n: 1 })
        for (const session of [created, yield* retrieveSome(created.id), yield* retrieveSome(created.id)]) {
          // `Readonly` is only a compile-time promise; write through a mutable view to test the runtime.
          const data: Record<string, unknown> = session.data
          const user = data.user as { name: string; roles: Array<string> }
          expect(Object.isFrozen(data)).toBe(true)
          expect(Object.isFrozen(user)).toBe(true)
          expect(Object.isFrozen(user.roles)).toBe(true)
          // ES modules run in strict mode: writes to frozen objects throw.
          expect(() => {
            data.n = 2
          }).toThrow(TypeError)
          expect(() => {
            user.name = "mallory"
          }).toThrow(TypeError)
          expect(() => user.roles.push("admin")).toThrow(TypeError)
          expect(() => {
            delete data.user
          }).toThrow(TypeError)
        }
        expect((yield* retrieveSome(created.id)).data).toEqual({ user: { name: "alice", roles: ["user"] }, n: 1 })
      }))

    it.effect("the caller's own objects stay theirs: changing them later changes nothing stored", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const input = { user: { name: "alice" }, list: [1] }
        const created = yield* store.create(input)
        input.user.name = "changed after create"
        input.list.push(2)
        expect(Object.isFrozen(input)).toBe(false)
        expect((yield* retrieveSome(created.id)).data).toEqual({ user: { name: "alice" }, list: [1] })

        const read = yield* retrieveSome(created.id)
        const patch = { prefs: { theme: "dark" } }
        yield* store.flush(change(read, patch))
        patch.prefs.theme = "changed after flush"
        expect((yield* retrieveSome(created.id)).data).toEqual({
          user: { name: "alice" },
          list: [1],
          prefs: { theme: "dark" }
        })
      }))

    it.effect("createdAt is kept across reads and flushes", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const before = Date.now()
        const created = yield* store.create({ a: 1 })
        const after = Date.now()
        expect(created.createdAt).toBeGreaterThanOrEqual(before)
        expect(created.createdAt).toBeLessThanOrEqual(after)
        yield* store.flush(change(created, { a: 2 }))
        expect((yield* retrieveSome(created.id)).createdAt).toBe(created.createdAt)
      }))

    it.effect("users: create binds, retrieve reads the binding beside the data, sessionsOf lists live sessions", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const alice = `alice-${Session.makeId()}`
        const before = Date.now()
        const bound = yield* store.create({ n: 1 }, { user: alice })
        const other = yield* store.create({ n: 2 })
        expect(bound.user).toBe(alice)
        expect(other.user).toBeUndefined()
        const read = yield* retrieveSome(bound.id)
        expect(read.user).toBe(alice)
        expect(read.data).toEqual({ n: 1 })
        const listed = yield* store.sessionsOf(alice)
        expect(listed.map((s) => s.id)).toEqual([bound.id])
        const [info] = listed
        const now = Date.now()
        expect(info!.createdAt).toBe(bound.createdAt)
        expect(info!.createdAt).toBeGreaterThanOrEqual(before)
        expect(info!.lastActiveAt).toBeGreaterThanOrEqual(info!.createdAt)
        expect(info!.lastActiveAt).toBeLessThanOrEqual(now)
        expect(info!.expiresAt).toBeGreaterThan(now)
        expect(info!.expiresAt).toBeLessThanOrEqual(now + Duration.toMillis(store.expire) + 1000)
        expect(yield* store.sessionsOf(`nobody-${Session.makeId()}`)).toEqual([])
      }))

    it.effect("users: flush rebinds and unbinds; a copy read before keeps the stored binding", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const [a, b] = [`a-${Session.makeId()}`, `b-${Session.makeId()}`]
        const created = yield* store.create({ n: 1 }, { user: a })
        const stale = yield* retrieveSome(created.id)
        yield* store.flush({ ...created, user: b })
        expect((yield* retrieveSome(created.id)).user).toBe(b)
        expect(yield* store.sessionsOf(a)).toEqual([])
        expect((yield* store.sessionsOf(b)).map((s) => s.id)).toEqual([created.id])
        // The stale copy changes data only: its user is what it read, so the binding stays b.
        yield* store.flush(change(stale, { n: 2 }))
        const after = yield* retrieveSome(created.id)
        expect(after.user).toBe(b)
        expect(after.data).toEqual({ n: 2 })
        // A hand-built session (no user property) keeps the binding too.
        yield* store.flush({ id: created.id, data: { n: 3 } })
        expect((yield* retrieveSome(created.id)).user).toBe(b)
        yield* store.flush({ ...after, user: undefined })
        const unbound = yield* retrieveSome(created.id)
        expect(unbound.user).toBeUndefined()
        expect(unbound.data).toEqual({ n: 3 })
        expect(yield* store.sessionsOf(b)).toEqual([])
      }))

    it.effect("users: destroyAll destroys all but except, spares other users, and counts", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const [u, v] = [`u-${Session.makeId()}`, `v-${Session.makeId()}`]
        const mine = yield* Effect.all([1, 2, 3].map((n) => store.create({ n }, { user: u })))
        const theirs = yield* store.create({ n: 4 }, { user: v })
        // Cached reads first, so that the destroyed ones must leave the cache too.
        for (const s of mine) yield* retrieveSome(s.id)
        expect(yield* store.destroyAll(u, { except: mine[0]!.id })).toBe(2)
        expect(Option.isNone(yield* store.retrieve(mine[1]!.id))).toBe(true)
        expect(Option.isNone(yield* store.retrieve(mine[2]!.id))).toBe(true)
        yield* retrieveSome(mine[0]!.id)
        yield* retrieveSome(theirs.id)
        expect((yield* store.sessionsOf(u)).map((s) => s.id)).toEqual([mine[0]!.id])
        expect(yield* store.destroyAll(u)).toBe(1)
        expect(yield* store.sessionsOf(u)).toEqual([])
        expect(yield* store.destroyAll(u)).toBe(0)
        expect((yield* store.sessionsOf(v)).map((s) => s.id)).toEqual([theirs.id])
      }))

    it.effect("users: a destroyed session leaves sessionsOf; destroyAll spares a session rebound away", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const [u, v] = [`u-${Session.makeId()}`, `v-${Session.makeId()}`]
        const gone = yield* store.create({}, { user: u })
        const moved = yield* store.create({}, { user: u })
        yield* store.destroy(gone.id)
        yield* store.flush({ ...moved, user: v })
        expect(yield* store.sessionsOf(u)).toEqual([])
        expect(yield* store.destroyAll(u)).toBe(0)
        expect((yield* retrieveSome(moved.id)).user).toBe(v)
      }))

    it.effect("users: concurrent creates, rebinds and destroyAll list no session twice and leave none unlisted", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const users = [0, 1, 2].map((i) => `c${i}-${Session.makeId()}`)
        const sessions = yield* Effect.all(
          Array.from({ length: 30 }, (_, i) => store.create({ i }, { user: users[i % 3] })),
          { concurrency: "unbounded" }
        )
        yield* Effect.all(
          [
            ...sessions.map((s, i) => store.flush({ ...s, user: users[(i + 1) % 3] })),
            store.destroyAll(users[0]!),
            ...Array.from({ length: 5 }, (_, i) => store.create({ late: i }, { user: users[0] }))
          ],
          { concurrency: "unbounded" }
        )
        const listed = yield* Effect.all(users.map((u) => store.sessionsOf(u)))
        const ids = listed.flat().map((s) => s.id)
        expect(new Set(ids).size).toBe(ids.length)
        // Every live session is listed under the user it is bound to, and only there.
        for (const [i, u] of users.entries()) {
          for (const info of listed[i]!) expect((yield* retrieveSome(info.id)).user).toBe(u)
        }
        const all = [...sessions.map((s) => s.id)]
        for (const id of all) {
          const found = yield* store.retrieve(id)
          if (Option.isSome(found)) {
            expect(listed[users.indexOf(found.value.user!)]!.map((s) => s.id)).toContain(id)
          }
        }
        const total = listed.reduce((n, l) => n + l.length, 0)
        const destroyed = (yield* Effect.all(users.map((u) => store.destroyAll(u)))).reduce((a, b) => a + b, 0)
        expect(destroyed).toBe(total)
        for (const id of all) expect(Option.isNone(yield* store.retrieve(id))).toBe(true)
      }))

    it.effect("lifetimes: create with its own expire; retrieve and sessionsOf carry it; a number means seconds", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const user = `life-${Session.makeId()}`
        const remembered = yield* store.create({ n: 1 }, { user, expire: "2 hours" })
        expect(Duration.toMillis(remembered.expire!)).toBe(7_200_000)
        const read = yield* retrieveSome(remembered.id)
        expect(Duration.toMillis(read.expire!)).toBe(7_200_000)
        expect(read.data).toEqual({ n: 1 })
        // The lifetime is metadata: never a field of the data.
        expect(Object.keys(read.data)).toEqual(["n"])
        const plain = yield* store.create({ n: 2 }, { user })
        expect(plain.expire).toBeUndefined()
        expect(Object.hasOwn(plain, "expire")).toBe(true)
        expect((yield* retrieveSome(plain.id)).expire).toBeUndefined()
        const now = Date.now()
        const infos = yield* store.sessionsOf(user)
        const own = infos.find((i) => i.id === remembered.id)!
        const storeOnes = infos.find((i) => i.id === plain.id)!
        expect(own.expiresAt).toBeGreaterThan(now + Duration.toMillis(store.expire) + 60_000)
        expect(own.expiresAt).toBeLessThanOrEqual(now + 7_200_000 + 1000)
        expect(storeOnes.expiresAt).toBeLessThanOrEqual(now + Duration.toMillis(store.expire) + 1000)
        expect(Duration.toMillis((yield* store.create({}, { expire: 90 })).expire!)).toBe(90_000)
        expect(Duration.toMillis((yield* store.create({}, { expire: Duration.minutes(3) })).expire!)).toBe(180_000)
      }))

    it.effect("lifetimes: flush with another expire changes it, undefined goes back to the store's, a stale or hand-built copy keeps it", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const created = yield* store.create({ n: 1 })
        const stale = yield* retrieveSome(created.id)
        yield* store.flush({ ...created, expire: Duration.days(30) })
        const remembered = yield* retrieveSome(created.id)
        expect(Duration.toDays(remembered.expire!)).toBe(30)
        expect(remembered.data).toEqual({ n: 1 })
        // Read with the store's lifetime, the stale copy asks for what it read: the lifetime stays.
        yield* store.flush(change(stale, { n: 2 }))
        const after = yield* retrieveSome(created.id)
        expect(Duration.toDays(after.expire!)).toBe(30)
        expect(after.data).toEqual({ n: 2 })
        // A hand-built session (no expire property) keeps it too.
        yield* store.flush({ id: created.id, data: { n: 3 } })
        expect(Duration.toDays((yield* retrieveSome(created.id)).expire!)).toBe(30)
        // Changed again, in the same flush as data.
        yield* store.flush({ ...change(after, { n: 4 }), expire: Duration.hours(1) })
        const hour = yield* retrieveSome(created.id)
        expect(Duration.toHours(hour.expire!)).toBe(1)
        expect(hour.data).toEqual({ n: 4 })
        yield* store.flush({ ...hour, expire: undefined })
        const back = yield* retrieveSome(created.id)
        expect(back.expire).toBeUndefined()
        expect(back.data).toEqual({ n: 4 })
      }))

    it.effect("lifetimes: an expire that is not a positive duration fails with SessionEncodeError and writes nothing", () =>
      Effect.gen(function*() {
        const store = yield* Store
        // "forever" is not even a DurationInput: what plain JavaScript could pass.
        const inputs = [0, -1, "forever" as Duration.DurationInput, Duration.infinity, Number.NaN]
        for (const expire of inputs) {
          const error = yield* Effect.flip(store.create({ a: 1 }, { expire }))
          expect(error._tag).toBe("SessionEncodeError")
          expect(error._tag === "SessionEncodeError" && error.field).toBe("expire")
        }
        const created = yield* store.create({ a: 1 })
        const error = yield* Effect.flip(store.flush({ ...created, data: { a: 2 }, expire: Duration.infinity }))
        expect(error._tag).toBe("SessionEncodeError")
        expect(yield* dataOf(created.id)).toEqual({ a: 1 })
      }))

    it.effect("a read is marked refreshed only when it refreshed the lifetime, at most once per tenth of it", () =>
      Effect.gen(function*() {
        const store = yield* Store
        // A tenth of 10 s: reads within a second of the last refresh do not refresh.
        const created = yield* store.create({ a: 1 }, { expire: 10 })
        expect(created.refreshed).toBeUndefined()
        expect((yield* retrieveSome(created.id)).refreshed).toBeUndefined()
        const refreshed = yield* RedisServer.eventually(
          Effect.flatMap(
            retrieveSome(created.id),
            (s) => s.refreshed === true ? Effect.succeed(s) : Effect.fail("not refreshed yet")
          ),
          { timeoutMs: 10_000, intervalMs: 50 }
        )
        expect(refreshed.data).toEqual({ a: 1 })
        expect(Duration.toSeconds(refreshed.expire!)).toBe(10)
        // Just refreshed: the next read is not.
        expect((yield* retrieveSome(created.id)).refreshed).toBeUndefined()
      }))

    it.effect("many sessions at once stay independent", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const sessions = yield* Effect.all(Array.from({ length: 50 }, (_, i) => store.create({ i })), {
          concurrency: "unbounded"
        })
        yield* Effect.all(sessions.map((s) => store.flush(change(s, { double: (s.data.i as number) * 2 }))), {
          concurrency: "unbounded"
        })
        const read = yield* Effect.all(sessions.map((s) => dataOf(s.id)), { concurrency: "unbounded" })
        read.forEach((data, i) => expect(data).toEqual({ i, double: i * 2 }))
      }))
  })
