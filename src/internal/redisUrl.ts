/**
 * What a `redis://` url says beyond where Redis is: the database it names.
 * ioredis reads it from the path (`redis://host/3`), or else from a `db`
 * query parameter, and sends it to SELECT as written; a word there made the
 * handshake fail with an error that no caller could catch.
 */
import * as Either from "effect/Either"

// Redis parses a database index as a 32-bit integer in canonical decimal ("03" is not one).
const canonical = /^(0|[1-9][0-9]{0,9})$/
const maxDatabase = 2 ** 31 - 1

const check = (where: string, text: string): Either.Either<number, string> =>
  canonical.test(text) && Number(text) <= maxDatabase
    ? Either.right(Number(text))
    : Either.left(
      `Expected the url's database (${where}) to be an integer from 0 to ${maxDatabase}, got ${JSON.stringify(text)}`
    )

/**
 * The database that `url` names, `undefined` when it names none, or what is
 * wrong with it. The url is known to parse (the settings Schema checked it).
 *
 * @internal
 */
export const database = (url: string): Either.Either<number | undefined, string> => {
  const parsed = new URL(url)
  const path = parsed.pathname.length > 1 ? decodeURIComponent(parsed.pathname.slice(1)) : undefined
  const query = parsed.searchParams.get("db") ?? undefined
  if (path === undefined && query === undefined) return Either.right(undefined)
  if (path !== undefined && query !== undefined && path !== query) {
    return Either.left(
      `Expected one database in the url, got ${JSON.stringify(path)} in its path and ${JSON.stringify(query)} in ?db=`
    )
  }
  return path !== undefined ? check("its path", path) : check("?db=", query!)
}

/**
 * The database the store selects, for messages: the url's, when it names one
 * (ioredis lets it win over the `db` option), else the `database` setting.
 *
 * @internal
 */
export const describeDatabase = (url: string | undefined, setting: number): string => {
  const named = url === undefined || !URL.canParse(url) ? undefined : Either.getOrUndefined(database(url))
  return named === undefined ? String(setting) : `${named} (the url's)`
}
