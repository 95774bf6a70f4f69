/**
 * Signed cookie values: HMAC-SHA256 over the value with a list of secrets.
 * The first secret signs; every secret verifies, so secrets can be rotated
 * without logging anyone out.
 *
 * @since 0.1.0
 */
import type * as Arr from "effect/Array"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto"

/**
 * A value whose signature checked out.
 *
 * @since 0.1.0
 * @category models
 */
export interface Verified {
  /** The value that was signed. */
  readonly value: string
  /** True when an older secret (not the first) matched: the value should be signed again. */
  readonly rotated: boolean
}

/**
 * Signs and verifies values with a fixed list of secrets.
 *
 * @since 0.1.0
 * @category models
 */
export interface Signer {
  /** Appends `.` and the base64url HMAC-SHA256 of `value` under the first secret. */
  readonly sign: (value: string) => string
  /** Checks a signed value against every secret, in constant time per secret. `None` when none matches. */
  readonly verify: (signed: string) => Option.Option<Verified>
}

/** The length of a base64url SHA-256 digest without padding. */
const signatureLength = 43

/**
 * Makes a signer. The secrets are read once, here; the first one signs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (secrets: Arr.NonEmptyReadonlyArray<Redacted.Redacted<string>>): Signer => {
  const keys: ReadonlyArray<KeyObject> = secrets.map((secret) => createSecretKey(Buffer.from(Redacted.value(secret))))
  const mac = (key: KeyObject, value: string): Buffer => createHmac("sha256", key).update(value).digest()

  const sign = (value: string): string => `${value}.${mac(keys[0]!, value).toString("base64url")}`

  const check = (signed: string): Option.Option<Verified> => {
    const dot = signed.lastIndexOf(".")
    if (dot < 0 || signed.length - dot - 1 !== signatureLength) return Option.none()
    const value = signed.slice(0, dot)
    const given = Buffer.from(signed.slice(dot + 1), "base64url")
    // Non-canonical base64url (e.g. stray bits in the last character) decodes to
    // the same bytes; comparing the re-encoding keeps one valid spelling only.
    if (given.length !== 32 || given.toString("base64url") !== signed.slice(dot + 1)) return Option.none()
    // Every secret is tried, so the time taken does not tell which one matched.
    let matched = -1
    for (let i = 0; i < keys.length; i++) {
      if (timingSafeEqual(mac(keys[i]!, value), given) && matched === -1) matched = i
    }
    return matched === -1 ? Option.none() : Option.some({ value, rotated: matched > 0 })
  }

  // Cookies that verified, by their exact text. A browser sends the same cookie on every request,
  // so most requests skip the HMACs. This keeps verification constant-time with respect to the
  // secrets: only strings that passed the full check are ever stored, a lookup compares the whole
  // presented string with stored ones (V8 hashes strings with a per-process random seed, so an
  // attacker cannot steer which stored strings are compared), and a string not stored goes through
  // the full check. Finding one's own valid cookie in the cache teaches nothing about any other.
  // Failures are not stored: garbage must not evict real cookies.
  const verified = new Map<string, Option.Option<Verified>>()
  const verify = (signed: string): Option.Option<Verified> => {
    const known = verified.get(signed)
    if (known !== undefined) return known
    const result = check(signed)
    if (Option.isSome(result)) {
      // Bounded: when full, the oldest entry goes (insertion order). Re-verifying it costs one HMAC.
      if (verified.size >= verifiedCacheSize) verified.delete(verified.keys().next().value!)
      verified.set(signed, result)
    }
    return result
  }

  return { sign, verify }
}

/** How many verified cookies a signer remembers: about 400 KB at most. */
const verifiedCacheSize = 4096

/**
 * Signs `value` with `secret`: `value + "." + base64url(HMAC-SHA256(secret, value))`.
 *
 * @since 0.1.0
 * @category signing
 */
export const sign = (value: string, secret: Redacted.Redacted<string>): string => make([secret]).sign(value)

/**
 * Verifies a signed value against `secrets`; see {@link Signer}.
 *
 * @since 0.1.0
 * @category signing
 */
export const verify = (
  signed: string,
  secrets: Arr.NonEmptyReadonlyArray<Redacted.Redacted<string>>
): Option.Option<Verified> => make(secrets).verify(signed)
