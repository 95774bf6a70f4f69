import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { SessionConfigError } from "../SessionError.js"

/**
 * A duration as users write it: a `Duration`, a string such as `"15 minutes"`,
 * or a bare number (or numeric string) in `unit`. It must be finite and at
 * least `minMillis`.
 *
 * @internal
 */
export const durationInput = (
  unit: "seconds" | "millis",
  options: { readonly minMillis?: number; readonly expected?: string } = {}
) => {
  const minMillis = options.minMillis ?? 1
  const expected = options.expected ??
    `Expected a positive duration (a number of ${unit}, or a string such as "15 minutes")`
  return Schema.transformOrFail(
    Schema.Union(Schema.DurationFromSelf, Schema.Number, Schema.String),
    Schema.DurationFromSelf,
    {
      strict: true,
      decode: (input, _, ast) => {
        const numeric = typeof input === "number"
          ? input
          : typeof input === "string" && /^\s*\d+(\.\d+)?\s*$/.test(input)
          ? Number(input)
          : undefined
        const duration = numeric !== undefined
          ? Option.some(unit === "seconds" ? Duration.seconds(numeric) : Duration.millis(numeric))
          : Duration.decodeUnknown(input)
        return Option.match(
          Option.filter(duration, (d) => Duration.isFinite(d) && Duration.toMillis(d) >= minMillis),
          {
            onNone: () => ParseResult.fail(new ParseResult.Type(ast, input, `${expected}, got ${String(input)}`)),
            onSome: ParseResult.succeed
          }
        )
      },
      encode: ParseResult.succeed
    }
  )
}

/**
 * A strict decoder for settings objects: unknown keys are errors, and the
 * first problem becomes a `SessionConfigError` naming its field.
 *
 * @internal
 */
export const decoder = <A, I>(schema: Schema.Schema<A, I>, noun: "setting" | "option") => {
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "error", errors: "first" })
  return (input: unknown): Either.Either<A, SessionConfigError> =>
    Either.mapLeft(decode(input), (error) => {
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
      return new SessionConfigError({
        field: issue === undefined || issue.path.length === 0 ? `(${noun}s)` : issue.path.join("."),
        detail: issue === undefined
          ? `invalid ${noun}s`
          : issue._tag === "Unexpected"
          ? `unknown ${noun} (check its spelling)`
          : issue.message
      })
    })
}
