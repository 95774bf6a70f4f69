/**
 * Signed cookie values: HMAC-SHA256 over the value with a list of secrets.
 * The first secret signs; every secret verifies, so secrets can be rotated
 * without logging anyone out. Two formats: this library's own, and
 * express-session's, so that an Express app and an Effect app can share one
 * cookie while an app moves from one to the other.
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
 * How a signed value is spelled.
 *
 * - `"native"`: `<value>.<base64url HMAC-SHA256>`, for this library's 43-character ids.
 * - `"express-session"`: `s:<value>.<base64 HMAC-SHA256 without padding>`, as express-session
 *   (cookie-signature) writes it, for its ids (`uid-safe`, or any URL-safe id of 16 to 128 characters).
 *
 * @since 0.1.0
 * @category models
 */
export type Format = "native" | "express-session"

/**
 * Signs and verifies values with a fixed list of secrets.
 *
 * @since 0.1.0
 * @category models
 */
export interface Signer {
  /** Signs `value` under the first secret, in the signer's format. */
  readonly sign: (value: string) => string
  /** Checks a signed value against every secret, in constant time per secret. `None` when none matches. */
  readonly verify: (signed: string) => Option.Option<Verified>
  /** Tells whether a value has the shape of a session id in this format. */
  readonly isId: (value: string) => boolean
}

/** The length of a SHA-256 digest in base64 or base64url without padding. */
const signatureLength = 43

interface Spelling {
  readonly prefix: string
  readonly encoding: "base64url" | "base64"
  readonly id: RegExp
}

const spellings: Record<Format, Spelling> = {
  native: { prefix: "", encoding: "base64url", id: /^[A-Za-z0-9_-]{43}$/ },
  // express-session signs `s:` + id with cookie-signature: base64 with its "=" padding stripped.
  "express-session": { prefix: "s:", encoding: "base64", id: /^[A-Za-z0-9_-]{16,128}$/ }
}

/**
 * Makes a signer. The secrets are read once, here; the first one signs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  secrets: Arr.NonEmptyReadonlyArray<Redacted.Redacted<string>>,
  format: Format = "native"
): Signer => {
  const keys: ReadonlyArray<KeyObject> = secrets.map((secret) => createSecretKey(Buffer.from(Redacted.value(secret))))
  const mac = (key: KeyObject, value: string): Buffer => createHmac("sha256", key).update(value).digest()
  const { encoding, id, prefix } = spellings[format]
  const encode = (digest: Buffer): string =>
    encoding === "base64url" ? digest.toString("base64url") : digest.toString("base64").replace(/=+$/, "")

  const sign = (value: string): string => `${prefix}${value}.${encode(mac(keys[0]!, value))}`

  const check = (signed: string): Option.Option<Verified> => {
    if (!signed.startsWith(prefix)) return Option.none()
    const dot = signed.lastIndexOf(".")
    if (dot < prefix.length || signed.length - dot - 1 !== signatureLength) return Option.none()
    const value = signed.slice(prefix.length, dot)
    const given = Buffer.from(signed.slice(dot + 1), encoding)
    // Non-canonical base64 (e.g. stray bits in the last character) decodes to
    // the same bytes; comparing the re-encoding keeps one valid spelling only.
    if (given.length !== 32 || encode(given) !== signed.slice(dot + 1)) return Option.none()
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

  return { sign, verify, isId: (value) => id.test(value) }
}

/** How many verified cookies a signer remembers: about 400 KB at most. */
const verifiedCacheSize = 4096

/**
 * Signs `value` with `secret`: `value + "." + base64url(HMAC-SHA256(secret, value))`, or
 * express-session's spelling.
 *
 * @since 0.1.0
 * @category signing
 */
export const sign = (value: string, secret: Redacted.Redacted<string>, format: Format = "native"): string =>
  make([secret], format).sign(value)

/**
 * Verifies a signed value against `secrets`; see {@link Signer}.
 *
 * @since 0.1.0
 * @category signing
 */
export const verify = (
  signed: string,
  secrets: Arr.NonEmptyReadonlyArray<Redacted.Redacted<string>>,
  format: Format = "native"
): Option.Option<Verified> => make(secrets, format).verify(signed)
