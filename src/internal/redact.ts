/**
 * Keeps credentials out of anything that may be printed: error messages,
 * stacks and causes.
 */

const placeholder = "<redacted>"

/**
 * Replaces the credentials of a url (`scheme://user:password@host`, or a bare
 * `user:password@host`) with a placeholder. Everything up to the last `@` is
 * dropped, because a malformed url may hold its password anywhere before it.
 *
 * @internal
 */
export const url = (input: string): string => {
  const at = input.lastIndexOf("@")
  if (at < 0) return input
  const scheme = /^\s*[a-z][a-z0-9+.-]*:\/\//i.exec(input)?.[0] ?? ""
  return `${scheme}${placeholder}@${input.slice(at + 1)}`
}

/**
 * Removes every known secret, and anything that looks like url credentials,
 * from `text`.
 *
 * @internal
 */
export const text = (input: string, secrets: ReadonlyArray<string>): string => {
  let out = input
  for (const secret of secrets) {
    if (secret === "") continue
    out = out.replaceAll(secret, placeholder)
    const encoded = encodeURIComponent(secret)
    if (encoded !== secret) out = out.replaceAll(encoded, placeholder)
  }
  // userinfo in any url-like token: `redis://user:pw@host` keeps only the scheme and host.
  return out.replace(
    /([a-z][a-z0-9+.-]*:\/\/)?[^\s"'`@]+@/gi,
    (_match, scheme: string | undefined) => `${scheme ?? ""}${placeholder}@`
  )
}

/**
 * The password a url carries, as written and percent-decoded.
 *
 * @internal
 */
export const secretsOfUrl = (input: string | undefined): ReadonlyArray<string> => {
  if (input === undefined || !URL.canParse(input)) return []
  const raw = new URL(input).password
  if (raw === "") return []
  try {
    return [raw, decodeURIComponent(raw)]
  } catch {
    return [raw]
  }
}

/**
 * What is kept of a failure from a client library: its name, message and
 * code, with secrets removed. Never the original object, whose properties
 * (ioredis keeps `command.args`, e.g. `AUTH user <password>`, or a
 * transaction's values) may hold secrets that `util.inspect` or
 * `JSON.stringify` would print.
 *
 * @internal
 */
export const error = (cause: unknown, secrets: ReadonlyArray<string>): Error | undefined => {
  if (cause === undefined || cause === null) return undefined
  if (!(cause instanceof Error)) return new Error(text(String(cause), secrets))
  const clean = new Error(text(cause.message, secrets))
  clean.name = text(cause.name, secrets)
  const code = (cause as NodeJS.ErrnoException).code
  if (typeof code === "string") (clean as NodeJS.ErrnoException).code = text(code, secrets)
  // The original frames say where the library noticed the failure; they hold no data.
  clean.stack = cause.stack === undefined ? `${clean.name}: ${clean.message}` : text(cause.stack, secrets)
  return clean
}
