/**
 * The per-request session state machine as pure values: each transition, the
 * end-of-request plan, and the one cookie rule. The same transitions are
 * exercised over HTTP in HttpSession.state.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as fc from "fast-check"
import * as Session from "../src/internal/codec.js"
import * as RequestState from "../src/internal/requestState.js"

const stored = (data: Session.SessionData = { a: 1 }): Session.Session =>
  Either.getOrThrow(Session.encodeNew(Session.makeId(), data, 0)).session

const verified = (value: string, rotated = false) => Option.some({ value, rotated })

describe("RequestState transitions", () => {
  it("load without a stored session: a new, empty session that plans nothing", () => {
    const state = RequestState.loaded(undefined)
    expect(state).toMatchObject({ _tag: "Active", base: undefined, isNew: true, retired: [] })
    const plan = RequestState.plan(state, false)
    expect(plan).toMatchObject({ retired: [], flush: undefined, create: undefined, outcome: { _tag: "None" } })
  })

  it("load without a stored session, saveUninitialized: the empty session is created", () => {
    expect(RequestState.plan(RequestState.loaded(undefined), true).create).toEqual({})
  })

  it("load of a stored session, only read: nothing to write, the cookie is kept as it is", () => {
    const session = stored()
    const plan = RequestState.plan(RequestState.loaded(session), false)
    expect(plan).toMatchObject({ retired: [], flush: undefined, create: undefined })
    expect(plan.outcome).toEqual({ _tag: "Kept", id: session.id })
  })

  it("set: the changed session is flushed against what it was read from", () => {
    const session = stored({ a: 1 })
    const state = RequestState.withData(RequestState.loaded(session), { a: 1, b: 2 })
    const plan = RequestState.plan(state, false)
    expect(plan.flush).toMatchObject({ id: session.id, data: { a: 1, b: 2 }, snapshot: session.snapshot })
    expect(Session.diff(plan.flush!).set).toEqual([["b", "2"]])
  })

  it("regenerate: the data moves to a new session, in one move from the old id", () => {
    const session = stored({ a: 1 })
    const state = RequestState.regenerated(RequestState.loaded(session))
    expect(RequestState.plan(state, false)).toMatchObject({
      retired: [],
      create: { a: 1 },
      from: session.id,
      login: false
    })
    // Regenerating again moves from the same id: the new one does not exist yet.
    expect(RequestState.plan(RequestState.regenerated(state), false)).toMatchObject({ retired: [], from: session.id })
    // login binds the new id, whatever came before; a regenerate after it keeps that.
    const login = RequestState.regenerated(state, "ann")
    expect(RequestState.plan(login, false)).toMatchObject({ from: session.id, login: true, user: "ann" })
    expect(RequestState.plan(RequestState.regenerated(login), false)).toMatchObject({ login: true, user: "ann" })
    // Destroyed after a regenerate: the id it would have moved from is deleted, nothing is moved.
    const gone = RequestState.plan(RequestState.destroyed(state, undefined), false)
    expect(gone).toMatchObject({ retired: [session.id], create: undefined })
    expect(gone.from).toBeUndefined()
  })

  it("regenerate of a new, empty session still saves it: the handler asked for a session", () => {
    const state = RequestState.regenerated(RequestState.loaded(undefined))
    expect(RequestState.plan(state, false)).toMatchObject({ retired: [], create: {} })
  })

  it("destroy without a load: the cookie's id is deleted and the cookie expired", () => {
    const id = Session.makeId()
    const state = RequestState.destroyed(RequestState.unloaded, id)
    const plan = RequestState.plan(state, true)
    expect(plan).toMatchObject({ retired: [id], create: undefined, outcome: { _tag: "Ended" } })
    expect(RequestState.cookieFor(plan.outcome, verified(id), true, false)).toEqual({ _tag: "Expire" })
    // No cookie came: there is none to expire.
    expect(RequestState.cookieFor(plan.outcome, Option.none(), false, false)).toEqual(RequestState.noCookie)
  })

  it("destroy then set: the old session is deleted and a new one carries the new data", () => {
    const session = stored({ a: 1 })
    const gone = RequestState.destroyed(RequestState.loaded(session), undefined)
    expect(gone.data).toEqual({})
    const plan = RequestState.plan(RequestState.withData(gone, { b: 2 }), false)
    expect(plan).toMatchObject({ retired: [session.id], create: { b: 2 } })
  })

  it("issued: a session made during the request always gets its cookie", () => {
    const made = stored({ a: 1 })
    const state = RequestState.issued(RequestState.loaded(undefined), made)
    const plan = RequestState.plan(state, false)
    expect(plan.outcome).toEqual({ _tag: "Issued", id: made.id })
    expect(RequestState.cookieFor(plan.outcome, Option.none(), false, false)).toEqual({ _tag: "Set", id: made.id })
  })
})

describe("RequestState lifetimes", () => {
  const remembered = (): Session.Session =>
    Either.getOrThrow(Session.encodeNew(Session.makeId(), { a: 1 }, 0, undefined, 86_400_000)).session

  it("a loaded session keeps its own lifetime; an unchanged one plans nothing", () => {
    const session = remembered()
    const state = RequestState.loaded(session)
    expect(Duration.toMillis(state.expire!)).toBe(86_400_000)
    expect(RequestState.plan(RequestState.withExpire(state, Duration.days(1)), false).flush).toBeUndefined()
  })

  it("setExpire alone: the stored session is flushed with the new lifetime and its data untouched", () => {
    const session = stored({ a: 1 })
    const plan = RequestState.plan(RequestState.withExpire(RequestState.loaded(session), Duration.days(30)), false)
    expect(plan.flush).toMatchObject({ id: session.id, data: { a: 1 } })
    expect(Duration.toDays(plan.flush!.expire!)).toBe(30)
    expect(RequestState.changesLifetime(plan.flush!)).toBe(true)
    expect(Session.hasChanges(plan.flush!)).toBe(false)
    // Back to the store's: a change too.
    const back = RequestState.plan(RequestState.withExpire(RequestState.loaded(remembered()), undefined), false)
    expect(back.flush!.expire).toBeUndefined()
    expect(RequestState.changesLifetime(back.flush!)).toBe(true)
  })

  it("a new session, a regenerated one and one started after destroy are created with the lifetime asked for", () => {
    const day = Duration.days(1)
    const fresh = RequestState.withData(RequestState.withExpire(RequestState.loaded(undefined), day), { a: 1 })
    expect(RequestState.plan(fresh, false)).toMatchObject({ create: { a: 1 }, expire: day })
    // A new session that holds nothing is still not saved for its lifetime alone.
    expect(RequestState.plan(RequestState.withExpire(RequestState.loaded(undefined), day), false).create)
      .toBeUndefined()
    // regenerate (and login) keep the lifetime; a lifetime set after it applies to the new id.
    const kept = RequestState.regenerated(RequestState.loaded(remembered()), "ann")
    expect(Duration.toDays(RequestState.plan(kept, false).expire!)).toBe(1)
    expect(RequestState.plan(RequestState.withExpire(kept, undefined), false).expire).toBeUndefined()
    // destroy: whatever comes next starts with the store's lifetime.
    const gone = RequestState.destroyed(RequestState.loaded(remembered()), undefined)
    expect(RequestState.plan(RequestState.withData(gone, { b: 1 }), false).expire).toBeUndefined()
  })
})

describe("RequestState.cookieFor", () => {
  const id = Session.makeId()
  const kept: RequestState.Outcome = { _tag: "Kept", id }

  it("a kept id is sent again only when rolling, or when it came signed with an older secret", () => {
    expect(RequestState.cookieFor(kept, verified(id), true, false)).toEqual(RequestState.noCookie)
    expect(RequestState.cookieFor(kept, verified(id), true, true)).toEqual({ _tag: "Set", id })
    expect(RequestState.cookieFor(kept, verified(id, true), true, false)).toEqual({ _tag: "Set", id })
    // A rotated cookie for another id (the session was replaced) is not what gets re-signed.
    expect(RequestState.cookieFor(kept, verified(Session.makeId(), true), true, false)).toEqual(RequestState.noCookie)
  })

  it("a kept id is sent again when the store refreshed the session's lifetime during the request", () => {
    expect(RequestState.cookieFor(kept, verified(id), true, false, true)).toEqual({ _tag: "Set", id })
    expect(RequestState.cookieFor(kept, verified(id), true, false, false)).toEqual(RequestState.noCookie)
  })

  it("no session, and none before: no Set-Cookie", () => {
    expect(RequestState.cookieFor({ _tag: "None" }, Option.none(), false, true)).toEqual(RequestState.noCookie)
  })
})

// Any sequence of handler operations: the plan writes exactly the data the handler left, never
// deletes the session it keeps, and deletes every stored id it moved away from.
describe("RequestState under arbitrary operation sequences", () => {
  type Op =
    | { readonly _tag: "set"; readonly key: string; readonly value: number }
    | { readonly _tag: "unset"; readonly key: string }
    | { readonly _tag: "clear" }
    | { readonly _tag: "regenerate" }
    | { readonly _tag: "destroy" }
    | { readonly _tag: "issue" }

  const key = fc.constantFrom("a", "b", "c")
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ _tag: fc.constant("set" as const), key, value: fc.integer() }),
    fc.record({ _tag: fc.constant("unset" as const), key }),
    fc.constant({ _tag: "clear" as const }),
    fc.constant({ _tag: "regenerate" as const }),
    fc.constant({ _tag: "destroy" as const }),
    fc.constant({ _tag: "issue" as const })
  )

  it("holds the model's data and retires exactly the ids left behind", () => {
    fc.assert(fc.property(fc.boolean(), fc.array(op, { maxLength: 12 }), (hasStored, ops) => {
      const first = hasStored ? stored({ a: 0 }) : undefined
      let state = RequestState.loaded(first)
      let data: Record<string, unknown> = first === undefined ? {} : { a: 0 }
      const left = new Set<string>()
      // Ids a move already took away (an `id` asked after a regenerate moves at once).
      const moved = new Set<string>()
      for (const o of ops) {
        const current = RequestState.storedId(state)
        switch (o._tag) {
          case "set":
            data = { ...data, [o.key]: o.value }
            state = RequestState.withData(state, Object.freeze(data))
            break
          case "unset": {
            const { [o.key]: _, ...rest } = data
            data = rest
            state = RequestState.withData(state, Object.freeze(data))
            break
          }
          case "clear":
            data = {}
            state = RequestState.withData(state, RequestState.emptyData)
            break
          case "regenerate":
            if (current !== undefined) left.add(current)
            state = RequestState.regenerated(state)
            break
          case "destroy":
            if (current !== undefined) left.add(current)
            data = {}
            state = RequestState.destroyed(state, undefined)
            break
          case "issue":
            if (state._tag === "Regenerated" && state.from !== undefined) moved.add(state.from)
            if (current === undefined) state = RequestState.issued(state, stored(data))
            break
        }
      }
      const plan = RequestState.plan(state, false)
      expect(new Set([...plan.retired, ...(plan.from === undefined ? [] : [plan.from]), ...moved])).toEqual(left)
      const kept = RequestState.storedId(state)
      if (kept !== undefined) expect(plan.retired).not.toContain(kept)
      const written = plan.flush?.data ?? plan.create ?? (kept !== undefined ? state.data : {})
      expect(written).toEqual(data)
    }))
  })
})
