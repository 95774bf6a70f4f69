import { describe, expect, it } from "@effect/vitest"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import { createHmac } from "node:crypto"
import * as Session from "../src/internal/codec.js"
import * as SessionCookie from "../src/SessionCookie.js"

const current = Redacted.make("current-secret-0123456789abcdefghijklmnop")
const previous = Redacted.make("previous-secret-0123456789abcdefghijklmno")
const stranger = Redacted.make("someone-elses-secret-0123456789abcdefghij")

describe("SessionCookie", () => {
  it("signs as value.base64url(HMAC-SHA256(secret, value))", () => {
    const id = Session.makeId()
    const expected = createHmac("sha256", Redacted.value(current)).update(id).digest("base64url")
    expect(SessionCookie.sign(id, current)).toBe(`${id}.${expected}`)
  })

  it("verifies its own signature and reports no rotation for the first secret", () => {
    const signer = SessionCookie.make([current, previous])
    const id = Session.makeId()
    expect(signer.verify(signer.sign(id))).toEqual(Option.some({ value: id, rotated: false }))
  })

  it("verifies a value signed with an older secret and reports the rotation", () => {
    const id = Session.makeId()
    const old = SessionCookie.sign(id, previous)
    expect(SessionCookie.verify(old, [current, previous])).toEqual(Option.some({ value: id, rotated: true }))
    // Once the old secret is retired, the old signature is worthless.
    expect(SessionCookie.verify(old, [current])).toEqual(Option.none())
  })

  it("rejects a signature made with an unknown secret", () => {
    const id = Session.makeId()
    expect(SessionCookie.verify(SessionCookie.sign(id, stranger), [current, previous])).toEqual(Option.none())
  })

  it("rejects a changed value, a changed, truncated or missing signature, and a non-canonical spelling", () => {
    const signer = SessionCookie.make([current])
    const id = Session.makeId()
    const signed = signer.sign(id)
    const signature = signed.slice(id.length + 1)
    const other = Session.makeId()
    const last = signature[signature.length - 1]!
    // The last base64url character of a 32-byte digest carries 2 unused bits: a
    // different character with the same top bits decodes to the same bytes.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    const index = alphabet.indexOf(last)
    const sameBytes = alphabet[(index & ~3) | ((index + 1) & 3)]!
    const cases = [
      `${other}.${signature}`,
      `${id}.${signature.slice(0, -1)}`,
      `${id}.${signature}A`,
      `${id}.`,
      id,
      `.${signature}`,
      "",
      ".",
      `${id}.${signature.slice(0, -1)}${sameBytes}`,
      `${id}.${Buffer.from(signature, "base64url").toString("base64")}`
    ]
    for (const input of cases) expect(signer.verify(input), input).toEqual(Option.none())
  })

  it("keeps everything before the last dot as the value", () => {
    const signer = SessionCookie.make([current])
    expect(signer.verify(signer.sign("a.b.c"))).toEqual(Option.some({ value: "a.b.c", rotated: false }))
  })

  it("never throws and never accepts an arbitrary string (property)", () => {
    const signer = SessionCookie.make([current, previous])
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (input) => {
        expect(Option.isNone(signer.verify(input))).toBe(true)
      }),
      { numRuns: 5_000 }
    )
  })

  it("accepts exactly its own signatures of arbitrary values (property)", () => {
    const signer = SessionCookie.make([current])
    fc.assert(
      fc.property(fc.string({ maxLength: 100 }), fc.string({ maxLength: 3 }), (value, noise) => {
        const signed = signer.sign(value)
        expect(signer.verify(signed)).toEqual(Option.some({ value, rotated: false }))
        if (noise !== "") expect(Option.isNone(signer.verify(signed + noise))).toBe(true)
      }),
      { numRuns: 2_000 }
    )
  })
})
