/**
 * The session codec's change test agrees with the delta it stands in for:
 * `hasChanges` is true exactly when `encodeDelta` would write something.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as fc from "fast-check"
import * as Session from "../src/internal/codec.js"

const key = fc.constantFrom("a", "b", "$c", "$$x", "__proto__", "n", "constructor")
const json = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 3 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 2 })
)
const data = fc.dictionary(key, json, { maxKeys: 5 })
/** What a handler may do to a field: keep the stored value, replace it (equal or not), drop it, or set `undefined`. */
const edit = fc.oneof(
  fc.constant({ _tag: "keep" as const }),
  fc.constant({ _tag: "copy" as const }),
  fc.constant({ _tag: "drop" as const }),
  fc.constant({ _tag: "undefined" as const }),
  json.map((value) => ({ _tag: "put" as const, value }))
)

/** The straightforward delta, rebuilt key by key: the oracle for the one the codec computes. */
const referenceDelta = (session: Session.Session, base: Session.Snapshot) => {
  const toField = (key: string) => key.startsWith("$") ? "$" + key : key
  const set = new Map<string, string>()
  const fields = new Map(Object.entries(base.fields))
  const kept = new Set<string>()
  for (const key of Object.keys(session.data)) {
    const value = session.data[key]
    const field = toField(key)
    const old = Object.hasOwn(base.fields, field) ? base.fields[field] : undefined
    const encoded = typeof value === "function" || value === undefined ? undefined : JSON.stringify(value)
    if (encoded === undefined) continue
    kept.add(field)
    if (encoded !== old) {
      set.set(field, encoded)
      fields.set(field, encoded)
    }
  }
  const remove = new Set<string>()
  for (const field of Object.keys(base.fields)) {
    const isData = !field.startsWith("$") || field.startsWith("$$")
    if (isData && !kept.has(field)) {
      remove.add(field)
      fields.delete(field)
    }
  }
  return { set, remove, fields: Object.fromEntries(fields) }
}

type Edit = typeof edit extends fc.Arbitrary<infer A> ? A : never

/** The session's data after a handler's edits; "__proto__" stays an ordinary key throughout. */
const applyEdits = (data: Session.SessionData, edits: Readonly<Record<string, Edit>>): Record<string, unknown> => {
  const define = (record: Record<string, unknown>, k: string, value: unknown) =>
    Object.defineProperty(record, k, { value, enumerable: true, writable: true, configurable: true })
  const next: Record<string, unknown> = {}
  for (const k of Object.keys(data)) define(next, k, data[k])
  for (const k of Object.keys(edits)) {
    const e = edits[k]!
    const current = Object.hasOwn(next, k) ? next[k] : undefined
    if (e._tag === "drop") delete next[k]
    else {
      define(
        next,
        k,
        e._tag === "keep"
          ? current
          : e._tag === "copy"
          ? structuredClone(current)
          : e._tag === "put"
          ? e.value
          : undefined
      )
    }
  }
  return next
}

/** A stored session, and a copy of it with some fields set, changed or removed. */
const edited = fc.tuple(data, fc.dictionary(key, edit, { maxKeys: 6 })).map(([stored, edits]) => {
  const { session } = Either.getOrThrow(Session.encodeNew("id", stored, 0))
  return { session, changed: { ...session, data: applyEdits(session.data, edits) } }
})

describe("Codec.diff", () => {
  it("writes exactly the changed fields and removes exactly the dropped ones, keeping untouched values as they were", () => {
    fc.assert(
      fc.property(edited, ({ changed, session }) => {
        const delta = Session.diff(changed)
        const expected = referenceDelta(changed, session.snapshot!)
        expect(new Map(delta.set)).toEqual(expected.set)
        expect(delta.set).toHaveLength(expected.set.size)
        expect(new Set(delta.remove)).toEqual(expected.remove)
        expect(delta.remove).toHaveLength(expected.remove.size)
        expect({ ...delta.next.fields }).toEqual(expected.fields)
        // The data is what the fields decode to; an untouched value keeps its identity.
        const decoded = Either.getOrThrow(Session.decode("id", { ...delta.next.fields, $c: "0" }, undefined))
        expect(Option.getOrThrow(decoded).data).toEqual(delta.next.data)
        for (const k of Object.keys(delta.next.data)) {
          if (Object.hasOwn(session.data, k) && changed.data[k] === session.data[k]) {
            expect(delta.next.data[k]).toBe(session.data[k])
          }
        }
        expect(Object.isFrozen(delta.next.data) && Object.isFrozen(delta.next.fields)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })

  it("removes a stored field whose new value encodes to nothing (a function)", () => {
    const { session } = Either.getOrThrow(Session.encodeNew("id", { a: 1, b: 2 }, 0))
    const delta = Session.diff({ ...session, data: { a: () => 1, b: 2 } })
    expect(delta.set).toEqual([])
    expect(delta.remove).toEqual(["a"])
    expect(delta.next.data).toEqual({ b: 2 })
  })
})

describe("Codec.hasChanges", () => {
  it("is true exactly when encodeDelta writes something", () => {
    fc.assert(
      fc.property(edited, ({ changed }) => {
        expect(Session.hasChanges(changed)).toBe(!Session.isEmpty(Session.diff(changed)))
      }),
      { numRuns: 2000 }
    )
  })

  it("counts a value with no JSON form as a change, so that the write reports it", () => {
    const { session } = Either.getOrThrow(Session.encodeNew("id", { a: 1 }, 0))
    expect(Session.hasChanges({ ...session, data: { a: 1n } })).toBe(true)
  })
})
