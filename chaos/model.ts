/**
 * The consistency checker: what one cookie-holding client may legitimately
 * see, given what it was acknowledged before.
 *
 * `GET /` reads `visits`, adds one and writes it back, so a 200 saying
 * `visits = v` means the request read v - 1 and v is acknowledged. `POST
 * /login` reads `visits = w` and copies it to a new session id (regenerate),
 * so w is read and acknowledged under the new id. `POST /logout` destroys the
 * session: the next `GET /` legitimately starts again at 1.
 *
 * A failed request (503, no response) may still have been applied, and late:
 * a command sent to a frozen Redis runs when it thaws, after the client got
 * its 503. So until the fault that failed it is over (plus the latency bound),
 * the count may jump, and after a failed login or logout the session may
 * vanish (the regenerate or logout's DEL applied late), even after a success.
 */

export type Kind = "get" | "login" | "logout"

/** A read that returned a value older than the client's latest acknowledged one. */
export interface StaleRead {
  readonly client: number
  readonly instance: string
  /** How many acknowledged versions the read missed. */
  readonly versions: number
  /** How long the oldest missed version had been acknowledged when the read started. */
  readonly ms: number
  readonly at: number
}

/** A session that vanished although the client never logged out and no login or logout failed. */
export interface Reset {
  readonly client: number
  readonly instance: string
  readonly lostVersions: number
  readonly at: number
  /** The cookie the client sent: after the run, Redis tells whether that session is really gone. */
  readonly sentSid: string | undefined
  /** The client's last requests, for diagnosis. */
  readonly recent: ReadonlyArray<string>
}

export interface Findings {
  /** Replies checked (200s of GET / and POST /login). */
  checked: number
  /** The instance missed a write that it had acknowledged itself. */
  readonly readYourWrites: Array<StaleRead>
  /** A read older than one the client had already read (from either instance). */
  monotonic: number
  /** The instance missed a write acknowledged by the other instance (and not one of its own). */
  readonly crossInstance: Array<StaleRead>
  /** Acknowledged versions overwritten because a request wrote back a count it read stale. */
  overwritten: number
  readonly resets: Array<Reset>
  /** The count moved by more than one with no failed request to explain it. */
  unexplainedJumps: number
  /** Sessions gone after a failed login or logout, as it may legitimately be. */
  expectedResets: number
  /**
   * Of those, sessions gone after a later request had succeeded on them: the failed request's DEL ran
   * late, and the successful one's write (acknowledged with a 200) went to a session already destroyed.
   */
  lateResets: number
}

export const emptyFindings = (): Findings => ({
  checked: 0,
  readYourWrites: [],
  monotonic: 0,
  crossInstance: [],
  overwritten: 0,
  resets: [],
  unexplainedJumps: 0,
  expectedResets: 0,
  lateResets: 0
})

interface Ack {
  readonly value: number
  readonly at: number
}

/** One client: its cookie and what it knows about its session's count. */
export class ClientModel {
  /** The signed cookie value; undefined when the client holds none. */
  sid: string | undefined = undefined
  maxAcked = 0
  maxRead = 0
  /** Highest value acknowledged by each instance, in the current lineage. */
  private ackedBy = new Map<string, number>()
  /** Acknowledged values in order, for staleness in ms. */
  private history: Array<Ack> = []
  /** Failed requests whose late effects are still possible: when they ended, and whether they could destroy. */
  private failures: Array<{ readonly at: number; readonly destroys: boolean; succeededSince: boolean }> = []
  private readonly recent: Array<string> = []

  /**
   * `settledAt(t)`: when a request that failed at t can no longer take effect: the end of the fault it
   * met plus the latency bound (infinite while that fault lasts).
   */
  constructor(
    readonly id: number,
    private readonly findings: Findings,
    private readonly settledAt: (t: number) => number
  ) {}

  private unsettled(now: number) {
    this.failures = this.failures.filter((f) => now < this.settledAt(f.at))
    return this.failures
  }

  /** A failed request may still change the count (make it jump). */
  ambiguous(now: number): boolean {
    return this.unsettled(now).length > 0
  }

  /** A failed login or logout may still destroy the session. */
  mayReset(now: number): boolean {
    return this.unsettled(now).some((f) => f.destroys)
  }

  /** The cookie header to send. */
  cookie(): string | undefined {
    return this.sid === undefined ? undefined : `sid=${this.sid}`
  }

  private restart(value: number, read: number, instance: string, at: number) {
    this.maxAcked = value
    this.maxRead = read
    this.ackedBy = new Map(value > 0 ? [[instance, value]] : [])
    this.history = value > 0 ? [{ value, at }] : []
  }

  /** Records a reply; `visits` is the count a 200 returned. */
  observe(
    kind: Kind,
    instance: string,
    reply: {
      readonly status: number
      readonly sid: string | null | undefined
      readonly startedAt: number
      readonly ms: number
    },
    visits: number | undefined
  ): void {
    const sentSid = this.sid
    this.recent.push(
      `${kind} on ${instance} at ${reply.startedAt}: ${reply.status}${visits === undefined ? "" : ` visits ${visits}`}${
        reply.sid === undefined ? "" : reply.sid === null ? " (cookie expired)" : " (new cookie)"
      }`
    )
    if (this.recent.length > 6) this.recent.shift()
    if (reply.sid === null) this.sid = undefined
    else if (reply.sid !== undefined) this.sid = reply.sid

    if (reply.status !== 200 || visits === undefined) {
      this.failures.push({ at: reply.startedAt + reply.ms, destroys: kind !== "get", succeededSince: false })
      return
    }
    const now = reply.startedAt
    const ackedAt = reply.startedAt + reply.ms
    if (kind === "logout") {
      this.sid = undefined
      this.restart(0, 0, instance, now)
      // A new session: nothing failed earlier can touch it.
      this.failures = []
      return
    }
    this.findings.checked++
    const read = kind === "get" ? visits - 1 : visits
    const fresh = read === 0 && (sentSid === undefined || (reply.sid !== undefined && reply.sid !== sentSid))
    if (fresh && this.maxAcked > 0) {
      // A new session: legitimate only after a failed login or logout.
      if (this.mayReset(now)) {
        if (this.failures.some((f) => f.destroys && f.succeededSince)) this.findings.lateResets++
        else this.findings.expectedResets++
      } else {
        this.findings.resets.push({
          client: this.id,
          instance,
          lostVersions: this.maxAcked,
          at: now,
          sentSid,
          recent: [...this.recent]
        })
      }
      this.restart(visits, read, instance, ackedAt)
      this.failures = []
    } else {
      const ackedHere = this.ackedBy.get(instance) ?? 0
      if (read < this.maxRead) this.findings.monotonic++
      if (read < this.maxAcked) {
        const oldestMissed = this.history.find((ack) => ack.value > read) ?? this.history[0]
        const stale: StaleRead = {
          client: this.id,
          instance,
          versions: this.maxAcked - read,
          ms: oldestMissed === undefined ? 0 : now - oldestMissed.at,
          at: now
        }
        if (read < ackedHere) this.findings.readYourWrites.push(stale)
        else this.findings.crossInstance.push(stale)
        // GET / writes back read + 1: every acknowledged version above `read` is gone.
        if (kind === "get") this.findings.overwritten += this.maxAcked - read
        // The session now continues from what was written; check against that from here on.
        this.restart(visits, read, instance, ackedAt)
      } else {
        if (read > this.maxAcked && !this.ambiguous(now)) this.findings.unexplainedJumps++
        this.maxAcked = Math.max(this.maxAcked, visits)
        this.maxRead = Math.max(this.maxRead, read)
        this.ackedBy.set(instance, Math.max(ackedHere, visits))
        if (this.history.length === 0 || this.history[this.history.length - 1]!.value < visits) {
          this.history.push({ value: visits, at: ackedAt })
          // Only the recent past matters for staleness; keep the list short.
          if (this.history.length > 64) this.history.splice(0, this.history.length - 64)
        }
      }
    }
    for (const failure of this.failures) failure.succeededSince = true
  }
}
