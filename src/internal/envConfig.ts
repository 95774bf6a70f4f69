/**
 * The one way settings are read from the environment: a table that gives each
 * setting (by its path in the settings object) a variable name and a kind,
 * read through Effect `Config` under a prefix, then decoded by the same strict
 * Schema decoder as a plain object. A rejected value becomes a `ConfigError`
 * that names the variable, not the field.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { SessionConfigError } from "../SessionError.js"
import * as Suggest from "./suggest.js"

/**
 * How a variable is read: `list` and `redactedList` are comma-separated;
 * `booleanOrString` is a boolean where it reads as one (`true`, `no`, ...),
 * else the text itself.
 *
 * @internal
 */
export type Kind = "string" | "redacted" | "integer" | "boolean" | "booleanOrString" | "list" | "redactedList"

/**
 * Each setting's path (`"cache.capacity"`) and its variable (after the prefix) and kind.
 *
 * @internal
 */
export type Table = Readonly<Record<string, readonly [name: string, kind: Kind]>>

const read = (name: string, kind: Kind): Config.Config<Option.Option<unknown>> => {
  switch (kind) {
    case "string":
      return Config.option(Config.string(name))
    case "redacted":
      return Config.option(Config.redacted(name))
    case "integer":
      return Config.option(Config.integer(name))
    case "boolean":
      return Config.option(Config.boolean(name))
    case "booleanOrString":
      return Config.option(Config.orElse(Config.boolean(name), () => Config.string(name)))
    case "list":
      return Config.option(Config.array(Config.string(), name))
    case "redactedList":
      return Config.option(Config.array(Config.redacted(), name))
  }
}

const setPath = (target: Record<string, unknown>, path: ReadonlyArray<string>, value: unknown): void => {
  const [head, ...rest] = path as [string, ...Array<string>]
  if (rest.length === 0) {
    target[head] = value
    return
  }
  const inner = (target[head] ??= {}) as Record<string, unknown>
  setPath(inner, rest, value)
}

/**
 * The variable a rejected field was read from: its own, or its parent's (`"secrets.0"` → `SECRETS`).
 *
 * @internal
 */
export const variableOf = (table: Table, field: string): string => {
  const parts = field.split(".")
  for (let n = parts.length; n > 0; n--) {
    const entry = table[parts.slice(0, n).join(".")]
    if (entry !== undefined) return entry[0]
  }
  return field.replace(/[A-Z]/g, (c) => `_${c}`).replace(/\./g, "_").toUpperCase()
}

/**
 * A decoding failure as Effect's `ConfigError`, naming the variable.
 *
 * @internal
 */
export const toConfigError = (table: Table, error: SessionConfigError, path: ReadonlyArray<string> = []) =>
  /is missing/.test(error.detail)
    ? ConfigError.MissingData([...path, variableOf(table, error.field)], error.detail)
    : ConfigError.InvalidData([...path, variableOf(table, error.field)], error.detail)

/**
 * Reads every variable of `table` under `prefix`, builds the settings object
 * (after `adapt`, for values whose text form differs, such as `"session"`),
 * and decodes it with `decode`.
 *
 * @internal
 */
export const make = <A>(options: {
  readonly table: Table
  readonly prefix: string
  readonly decode: (input: unknown) => Either.Either<A, SessionConfigError>
  readonly adapt?: (input: Record<string, unknown>) => Record<string, unknown>
}): Config.Config<A> => {
  const entries = Object.entries(options.table)
  return Config.all(entries.map(([, [name, kind]]) => read(name, kind))).pipe(
    Config.mapOrFail((values) => {
      const input: Record<string, unknown> = {}
      values.forEach((value, i) => {
        if (Option.isSome(value)) setPath(input, entries[i]![0].split("."), value.value)
      })
      return Either.mapLeft(
        options.decode(options.adapt === undefined ? input : options.adapt(input)),
        (error) => toConfigError(options.table, error)
      )
    }),
    Config.nested(options.prefix)
  )
}

/**
 * The variables of `env` under `prefix` that name no setting of `table`, each
 * with the closest variable that does (if one is close). Only names are read,
 * never values.
 *
 * @internal
 */
export const unknownVariables = (
  table: Table,
  prefix: string,
  env: Readonly<Record<string, string | undefined>> = process.env
): ReadonlyArray<{ readonly name: string; readonly suggestion: string | undefined }> => {
  const head = `${prefix}_`
  const known = Object.values(table).map(([name]) => name)
  const knownSet = new Set(known)
  const found: Array<{ readonly name: string; readonly suggestion: string | undefined }> = []
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith(head) || env[name] === undefined) continue
    const rest = name.slice(head.length)
    if (knownSet.has(rest)) continue
    const suggestion = Suggest.closest(rest, known)
    found.push({ name, suggestion: suggestion === undefined ? undefined : head + suggestion })
  }
  return found
}

// Each unknown variable is reported once per process, however many layers read the environment.
const reported = new Set<string>()

/**
 * Logs a warning, once per process, for each variable under `prefix` that
 * names no setting of `table`: a misspelt variable would otherwise be
 * ignored without a word (`REDIS_SESSION_EXPIRES=60` leaves the lifetime at
 * its default).
 *
 * @internal
 */
export const warnUnknownVariables = (table: Table, prefix: string, noun: "setting" | "option"): Effect.Effect<void> =>
  Effect.suspend(() => {
    const fresh = unknownVariables(table, prefix).filter(({ name }) => !reported.has(name))
    for (const { name } of fresh) reported.add(name)
    return Effect.forEach(fresh, ({ name, suggestion }) =>
      Effect.logWarning(
        `effect-session-redis: the environment variable ${name} is not ${
          noun === "setting" ? "a setting" : "an option"
        } and is ignored${suggestion === undefined ? "" : `; did you mean ${suggestion}?`}`
      ), { discard: true })
  })

// Settings objects read from the environment, and the table and prefix they were read with.
const sources = new WeakMap<
  object,
  { readonly table: Table; readonly prefix: string; readonly noun: "setting" | "option" }
>()

/**
 * Remembers that `value` was read from the environment with `table` under `prefix`.
 *
 * @internal
 */
export const remember = <A extends object>(
  value: A,
  table: Table,
  prefix: string,
  noun: "setting" | "option"
): A => {
  sources.set(value, { table, prefix, noun })
  return value
}

/**
 * For a settings object read from the environment, the warnings of
 * {@link warnUnknownVariables} under the prefix it was read with; nothing otherwise.
 *
 * @internal
 */
export const warnUnknownVariablesOf = (value: object): Effect.Effect<void> => {
  const source = sources.get(value)
  return source === undefined ? Effect.void : warnUnknownVariables(source.table, source.prefix, source.noun)
}
