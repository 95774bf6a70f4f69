/**
 * The one way settings are read from the environment: a table that gives each
 * setting (by its path in the settings object) a variable name and a kind,
 * read through Effect `Config` under a prefix, then decoded by the same strict
 * Schema decoder as a plain object. A rejected value becomes a `ConfigError`
 * that names the variable, not the field.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { SessionConfigError } from "../SessionError.js"

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
