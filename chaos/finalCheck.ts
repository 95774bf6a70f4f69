/**
 * After the run, with the app instances stopped and Redis restarted from its
 * AOF: every client's session read from Redis directly, against the highest
 * count the client had acknowledged; and every victim's session, against the
 * count it had before the fuzzer came.
 */
import type { RedisServer } from "../test/support/RedisServer.js"
import type { Victim } from "./fuzz.js"
import type { ClientModel, Reset } from "./model.js"

export interface LostWrite {
  readonly client: number
  readonly acknowledged: number
  /** What Redis holds; undefined when the session is gone. */
  readonly stored: number | undefined
}

export interface FinalCheck {
  /** Sessions read back (clients holding a session with an acknowledged count). */
  readonly sessions: number
  /** Acknowledged counts read back: the sum of the highest acknowledged value per session. */
  readonly acknowledged: number
  readonly lost: ReadonlyArray<LostWrite>
  /** Sessions whose last request failed, so that their fate is legitimately unknown. */
  readonly uncertain: number
  /** Stored count above the acknowledged one with no failed request to explain it. */
  readonly unexplainedHigher: number
  readonly victims: number
  /** Victims whose session changed although only forged cookies named it. */
  readonly victimsChanged: ReadonlyArray<string>
  /** For each session that vanished during the run: what Redis holds under the id the client had sent. */
  readonly vanished: ReadonlyArray<{ readonly reset: Reset; readonly stored: number | undefined }>
}

const idOf = (signed: string) => signed.slice(0, signed.lastIndexOf("."))

const visitsOf = (fields: Record<string, string>): number | undefined => {
  // A hash without the creation marker is no session (see Session.createdField).
  if (fields["$c"] === undefined || fields["visits"] === undefined) return undefined
  const value: unknown = JSON.parse(fields["visits"])
  return typeof value === "number" ? value : undefined
}

export const finalCheck = async (
  server: RedisServer,
  prefix: string,
  models: ReadonlyArray<ClientModel>,
  victims: ReadonlyArray<Victim>,
  resets: ReadonlyArray<Reset>
): Promise<FinalCheck> => {
  const redis = server.client()
  try {
    const lost: Array<LostWrite> = []
    let sessions = 0
    let acknowledged = 0
    let uncertain = 0
    let unexplainedHigher = 0
    const now = Date.now()
    for (const model of models) {
      if (model.sid === undefined || model.maxAcked === 0) continue
      if (model.mayReset(now)) {
        uncertain++
        continue
      }
      sessions++
      acknowledged += model.maxAcked
      const stored = visitsOf(await redis.hgetall(prefix + idOf(model.sid)))
      if (stored === undefined || stored < model.maxAcked) {
        lost.push({ client: model.id, acknowledged: model.maxAcked, stored })
      } else if (stored > model.maxAcked && !model.ambiguous(now)) unexplainedHigher++
    }
    const victimsChanged: Array<string> = []
    for (const victim of victims) {
      const fields = await redis.hgetall(prefix + victim.id)
      const stored = visitsOf(fields)
      if (stored !== victim.visits || fields["user"] !== JSON.stringify(victim.name)) {
        victimsChanged.push(`${victim.name}: had ${victim.visits}, now ${String(stored)}`)
      }
    }
    const vanished: Array<{ reset: Reset; stored: number | undefined }> = []
    for (const reset of resets) {
      const stored = reset.sentSid === undefined
        ? undefined
        : visitsOf(await redis.hgetall(prefix + idOf(reset.sentSid)))
      vanished.push({ reset, stored })
    }
    return {
      sessions,
      acknowledged,
      lost,
      uncertain,
      unexplainedHigher,
      victims: victims.length,
      victimsChanged,
      vanished
    }
  } finally {
    redis.disconnect()
  }
}
