/**
 * Fuzzed cookies and bodies: random, forged, truncated and oversized cookie
 * values, tampered signatures, ids signed with the wrong secret or signed
 * right but never created, and garbage JSON bodies for POST /login.
 *
 * The victims are real sessions with a known user and count. A forged cookie
 * must yield a fresh session (count 1 after GET /, 0 after login, no user)
 * under an id the server made up, never a victim's session nor the forged id.
 */
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as SessionCookie from "../src/SessionCookie.js"
import { type Reply, request } from "./http.js"

export interface Victim {
  readonly name: string
  readonly cookie: string
  readonly id: string
  visits: number
}

export interface FuzzCase {
  readonly name: string
  readonly method: "GET" | "POST"
  readonly path: string
  readonly cookie?: string | undefined
  readonly body?: string | Buffer | undefined
  readonly contentType?: string | undefined
  /** Ids this request must never be given. */
  readonly forbidden: ReadonlyArray<string>
}

export interface FuzzOutcome {
  readonly fuzzCase: FuzzCase
  readonly reply: Reply
  /** Why the reply shows an adopted session, if it does. */
  readonly adopted: string | undefined
}

const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(Math.random() * items.length)]!
const int = (max: number) => Math.floor(Math.random() * max)
// Printable ASCII: node refuses to send control characters in a header, which would test nothing here.
const printable = (length: number) => Array.from({ length }, () => String.fromCharCode(32 + int(95))).join("")
const idOf = (signed: string) => signed.slice(0, Math.max(0, signed.lastIndexOf(".")))

const flipChar = (s: string, index: number): string => {
  const c = s[index]!
  const replacement = c === "A" ? "B" : "A"
  return s.slice(0, index) + replacement + s.slice(index + 1)
}

const deepArray = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

const cookieCases = (victim: Victim, secret: string): ReadonlyArray<() => Omit<FuzzCase, "method" | "path">> => {
  const otherSecret = Redacted.make(randomBytes(32).toString("base64url"))
  const forbidden = [victim.id]
  const sig = victim.cookie.slice(victim.cookie.lastIndexOf(".") + 1)
  return [
    () => ({ name: "random printable value", cookie: `sid=${printable(int(200))}`, forbidden }),
    () => ({ name: "victim's id, unsigned", cookie: `sid=${victim.id}`, forbidden }),
    () => ({
      name: "victim's id, one signature character changed",
      cookie: `sid=${victim.id}.${flipChar(sig, int(sig.length))}`,
      forbidden
    }),
    () => ({
      name: "victim's id, signature's last character changed (non-canonical base64url)",
      cookie: `sid=${victim.id}.${sig.slice(0, -1)}${sig.endsWith("A") ? "B" : "A"}`,
      forbidden
    }),
    () => ({
      name: "victim's id signed with another secret",
      cookie: `sid=${SessionCookie.sign(victim.id, otherSecret)}`,
      forbidden
    }),
    () => ({
      name: "victim's cookie truncated",
      cookie: `sid=${victim.cookie.slice(0, int(victim.cookie.length))}`,
      forbidden
    }),
    () => ({
      // Letters, not any printable byte: a ";" or a space would end the value, leaving the victim's own cookie.
      name: "victim's cookie with characters appended",
      cookie: `sid=${victim.cookie}${randomBytes(6).toString("base64url").slice(0, 1 + int(8))}`,
      forbidden
    }),
    () => ({
      name: "victim's signature on another id",
      cookie: `sid=${flipChar(victim.id, int(43))}.${sig}`,
      forbidden
    }),
    () => {
      // Signed with the app's own secret, but never created: adopting it would be session fixation.
      const id = randomBytes(32).toString("base64url")
      return {
        name: "correctly signed id that was never created (fixation)",
        cookie: `sid=${SessionCookie.sign(id, Redacted.make(secret))}`,
        forbidden: [...forbidden, id]
      }
    },
    () => ({ name: "oversized value (4 KiB)", cookie: `sid=${"a".repeat(4096)}`, forbidden }),
    () => ({ name: "oversized value (12 KiB)", cookie: `sid=${"a".repeat(12_288)}.${sig}`, forbidden }),
    () => ({ name: "oversized header (20 KiB, over node's limit)", cookie: `sid=${"a".repeat(20_480)}`, forbidden }),
    () => ({
      name: "malformed percent-encoding",
      cookie: `sid=${pick(["%", "%E0%A4%A", "%ZZ", "%00", "%C0%AF"])}${victim.id}`,
      forbidden
    }),
    () => ({
      // The value is percent-decoded before it is verified: the encoding must not smuggle a tampered signature in.
      name: "percent-encoded tampered cookie",
      cookie: `sid=${encodeURIComponent(`${victim.id}.${flipChar(sig, int(sig.length))}`).replace(/\./g, "%2E")}`,
      forbidden
    }),
    () => ({ name: "empty value", cookie: "sid=", forbidden }),
    () => ({
      name: "two forged sid cookies",
      cookie: `sid=${victim.id}; sid=${printable(20).replace(/;/g, "")}`,
      forbidden
    }),
    () => ({
      name: "prototype key as cookie name",
      cookie: `__proto__=${victim.cookie}; constructor=${victim.cookie}`,
      forbidden
    }),
    () => ({ name: "quoted value", cookie: `sid="${victim.id}.${flipChar(sig, 0)}"`, forbidden })
  ]
}

const bodyCases: ReadonlyArray<() => Pick<FuzzCase, "name" | "body" | "contentType">> = [
  () => ({ name: "random bytes", body: randomBytes(1 + int(512)) }),
  () => ({ name: "truncated JSON", body: "{\"name\": \"abc".slice(0, 1 + int(12)) }),
  () => ({ name: "name is a number", body: "{\"name\": 5}" }),
  () => ({ name: "empty name", body: "{\"name\": \"   \"}" }),
  () => ({ name: "null", body: "null" }),
  () => ({ name: "array", body: "[]" }),
  () => ({ name: "name too long (10 000 chars)", body: JSON.stringify({ name: "x".repeat(10_000) }) }),
  () => ({ name: "deeply nested arrays (100 000 levels)", body: deepArray(100_000) }),
  () => ({ name: "deeply nested name", body: `{"name": ${deepArray(50_000)}}` }),
  () => ({ name: "__proto__ key", body: "{\"__proto__\": {\"name\": \"x\"}}" }),
  () => ({
    name: "invalid UTF-8",
    body: Buffer.from([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0xff, 0x22, 0x7d])
  }),
  () => ({ name: "empty body", body: "" }),
  () => ({ name: "1 MiB of spaces", body: " ".repeat(1 << 20) }),
  () => ({ name: "form content type", body: "name=x", contentType: "application/x-www-form-urlencoded" }),
  () => ({ name: "JSON with a text/plain type", body: "{\"name\": \"plain\"}", contentType: "text/plain" })
]

/** One random case: a forged cookie on GET / or POST /login, or a garbage body on POST /login. */
export const randomCase = (victims: ReadonlyArray<Victim>, secret: string): FuzzCase => {
  const victim = pick(victims)
  const roll = Math.random()
  if (roll < 0.55) {
    const c = pick(cookieCases(victim, secret))()
    return { ...c, name: `cookie: ${c.name}`, method: "GET", path: "/" }
  }
  if (roll < 0.7) {
    const c = pick(cookieCases(victim, secret))()
    return { ...c, name: `cookie: ${c.name}`, method: "POST", path: "/login", body: "{\"name\": \"fuzzer\"}" }
  }
  const b = pick(bodyCases)()
  // Not with a header over node's limit: node answers 431 and resets the connection while the body is still
  // being sent, which the client sees as ECONNRESET; that is node's HTTP server, not the app.
  let cookie = Math.random() < 0.5 ? pick(cookieCases(victim, secret))() : undefined
  while (cookie !== undefined && cookie.name.includes("over node's limit")) cookie = pick(cookieCases(victim, secret))()
  return {
    ...b,
    name: `body: ${b.name}`,
    method: "POST",
    path: "/login",
    cookie: cookie?.cookie,
    forbidden: cookie?.forbidden ?? [victim.id]
  }
}

const parse = (body: string): { visits?: unknown; user?: unknown } | undefined => {
  try {
    const value: unknown = JSON.parse(body)
    return typeof value === "object" && value !== null ? value : undefined
  } catch {
    return undefined
  }
}

/** Sends one case and judges the reply. */
export const send = async (port: number, fuzzCase: FuzzCase, timeoutMs: number): Promise<FuzzOutcome> => {
  const reply = await request(port, { ...fuzzCase, timeoutMs, pool: "fuzz" })
  let adopted: string | undefined
  if (reply.sid !== undefined && reply.sid !== null && fuzzCase.forbidden.includes(idOf(reply.sid))) {
    adopted = "the reply's cookie carries a forged or victim's id"
  } else if (reply.status === 200) {
    const body = parse(reply.body)
    const expected = fuzzCase.path === "/" ? 1 : 0
    if (body?.visits !== expected) adopted = `visits ${String(body?.visits)}, a fresh session has ${expected}`
    else if (fuzzCase.path === "/" && body.user !== null) adopted = `user ${String(body.user)} on a fresh session`
  }
  return { fuzzCase, reply, adopted }
}
