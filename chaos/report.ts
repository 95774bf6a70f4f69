/**
 * The run's figures as docs/reliability.md, and the verdict: which promises,
 * if any, the run saw broken.
 */
import type { Fault } from "./faults.js"
import type { FinalCheck } from "./finalCheck.js"
import type { FuzzOutcome } from "./fuzz.js"
import type { Sample } from "./load.js"
import type { Findings, StaleRead } from "./model.js"
import type { AbortResult, RaceResult } from "./scenarios.js"

export interface Result {
  readonly quick: boolean
  readonly date: string
  readonly durationS: number
  readonly loadMs: number
  readonly loadStart: number
  readonly node: string
  readonly redis: string
  readonly cpus: number
  readonly loadAverage: string
  readonly clients: number
  readonly thinkMs: readonly [number, number]
  readonly commandTimeoutMs: number
  readonly backoffMs: number
  readonly allowanceMs: number
  readonly boundMs: number
  readonly samples: ReadonlyArray<Sample>
  readonly faults: ReadonlyArray<Fault>
  readonly findings: Findings
  readonly fuzz: ReadonlyArray<FuzzOutcome>
  readonly check: FinalCheck
  readonly crashed: ReadonlyArray<string>
  readonly race: RaceResult
  readonly aborts: AbortResult
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(2)} MiB`
const heapGrowth = (aborts: AbortResult) => aborts.heapAfter - aborts.heapBefore
// The leak this scenario was written for held about 27 KiB per request; a few hundred KiB of growth
// that does not grow with the number of requests is the allocator's.
const perRequestLimit = 5 * 1024

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
const sortedOf = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)
const ms = (value: number) => value >= 100 ? `${Math.round(value)} ms` : `${value.toFixed(1)} ms`
const statusName = (status: number) => status === 0 ? "no response" : status === -1 ? "not sent" : String(status)

/** The fault whose window (its span plus the bound) a request overlaps, if any. */
const faultOf = (result: Result, startedAt: number, duration: number): Fault | undefined =>
  result.faults.find((f) => startedAt <= f.endedAt + result.boundMs && startedAt + duration >= f.startedAt)

const fuzz5xxOutsideFaults = (result: Result) =>
  result.fuzz.filter((o) =>
    (o.reply.status >= 500 || o.reply.status === 0) && faultOf(result, o.reply.startedAt, o.reply.ms) === undefined
  )

const overBound = (result: Result) => result.samples.filter((s) => s.ms > result.boundMs)
const fuzzOverBound = (result: Result) => result.fuzz.filter((o) => o.reply.ms > result.boundMs)

/** What the run saw broken; empty when every promise held. */
export const verdict = (result: Result): { failures: Array<string>; summary: Array<string> } => {
  const failures: Array<string> = []
  const lost = result.check.lost.length + result.findings.resets.length
  if (lost > 0) failures.push(`${lost} sessions lost acknowledged writes`)
  if (result.findings.readYourWrites.length > 0) {
    failures.push(`${result.findings.readYourWrites.length} read-your-writes violations`)
  }
  const fuzz5xx = fuzz5xxOutsideFaults(result).length
  if (fuzz5xx > 0) failures.push(`${fuzz5xx} fuzz requests got a 5xx or no response outside any fault`)
  const adopted = result.fuzz.filter((o) => o.adopted !== undefined).length + result.check.victimsChanged.length
  if (adopted > 0) failures.push(`${adopted} forged cookies adopted`)
  const slow = overBound(result).length + fuzzOverBound(result).length
  if (slow > 0) failures.push(`${slow} requests exceeded the ${result.boundMs} ms bound`)
  if (result.crashed.length > 0) failures.push(`app instances crashed: ${result.crashed.join(", ")}`)
  if (result.race.revived > 0) failures.push(`${result.race.revived} revoked sessions came back under a new id`)
  if (result.aborts.fibersLeft > 0) failures.push(`${result.aborts.fibersLeft} aborted requests' fibers never ended`)
  if (heapGrowth(result.aborts) > perRequestLimit * result.aborts.requests) {
    failures.push(`aborted writes grew the heap by ${mib(heapGrowth(result.aborts))}`)
  }
  const worst = Math.max(0, ...result.samples.map((s) => s.ms))
  const ok = result.samples.filter((s) => s.status === 200).length
  const summary = [
    `requests: ${result.samples.length} (${ok} ok), worst ${ms(worst)} against a ${result.boundMs} ms bound`,
    `acknowledged writes lost: ${lost}; read-your-writes violations: ${result.findings.readYourWrites.length}; ` +
    `monotonic-read violations: ${result.findings.monotonic}; cross-instance stale reads: ${result.findings.crossInstance.length}`,
    `fuzz: ${result.fuzz.length} cases, ${fuzz5xx} 5xx outside faults, ${adopted} forged ids adopted`,
    `regenerate vs sign-out-everywhere: ${result.race.trials} races, ${result.race.revived} revoked sessions came back`,
    `aborted writes under a frozen Redis: ${result.aborts.requests}, heap growth ${
      mib(heapGrowth(result.aborts))
    }, ${result.aborts.fibersLeft} request fibers left`
  ]
  return { failures, summary }
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>): string =>
  [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...rows.map((row) => `| ${row.join(" | ")} |`)
  ].join("\n")

const countBy = <A>(items: ReadonlyArray<A>, key: (a: A) => string): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1)
  return counts
}

const staleness = (reads: ReadonlyArray<StaleRead>): string => {
  if (reads.length === 0) return "none"
  const versions = sortedOf(reads.map((r) => r.versions))
  const age = sortedOf(reads.map((r) => r.ms))
  const buckets = [
    ["1 version", versions.filter((v) => v === 1).length],
    ["2", versions.filter((v) => v === 2).length],
    ["3–5", versions.filter((v) => v >= 3 && v <= 5).length],
    ["more", versions.filter((v) => v > 5).length]
  ] as const
  return [
    `${reads.length} reads; versions behind: ${buckets.map(([name, n]) => `${name}: ${n}`).join(", ")} (max ${
      versions[versions.length - 1]
    })`,
    `how long the oldest missed write had been acknowledged: p50 ${ms(percentile(age, 50))}, p99 ${
      ms(percentile(age, 99))
    }, max ${ms(age[age.length - 1]!)}`
  ].join("; ")
}

export const markdown = (result: Result): string => {
  const { samples, findings, check } = result
  const v = verdict(result)
  const at = (t: number) => `${((t - result.loadStart) / 1000).toFixed(1)} s`
  const inFault = samples.filter((s) => faultOf(result, s.startedAt, s.ms) !== undefined)
  const calm = samples.filter((s) => faultOf(result, s.startedAt, s.ms) === undefined)
  const statuses = [...new Set(samples.map((s) => s.status))].sort((a, b) => a - b)
  const kinds = ["get", "login", "logout"] as const
  const kindLabel = { get: "GET /", login: "POST /login", logout: "POST /logout" }
  const latencies = sortedOf(samples.map((s) => s.ms))
  const worst = latencies[latencies.length - 1] ?? 0
  const byStatusWorst = statuses.map((status) => {
    const these = sortedOf(samples.filter((s) => s.status === status).map((s) => s.ms))
    return [
      statusName(status),
      these.length,
      ms(percentile(these, 50)),
      ms(percentile(these, 99)),
      ms(these.at(-1) ?? 0)
    ]
  })
  const slow = overBound(result).sort((a, b) => b.ms - a.ms).slice(0, 5)
  const lost = check.lost.length + findings.resets.length
  const adopted = result.fuzz.filter((o) => o.adopted !== undefined)
  const fuzz5xx = fuzz5xxOutsideFaults(result)
  const fuzzNames = [...countBy(result.fuzz, (o) => o.fuzzCase.name)].sort(([a], [b]) => a.localeCompare(b))

  const recovery = (fault: Fault, instance: string) => {
    const first = samples
      .filter((s) => s.instance === instance && s.status === 200 && s.startedAt >= fault.endedAt)
      .sort((a, b) => a.startedAt + a.ms - (b.startedAt + b.ms))[0]
    return first === undefined ? "never" : ms(first.startedAt + first.ms - fault.endedAt)
  }

  return `# Reliability under faults

Generated by \`${result.quick ? "CHAOS_QUICK=1 " : ""}npm run chaos\` on ${result.date}; do not edit by hand.
The run took ${result.durationS} s on ${result.cpus} CPUs (load average ${result.loadAverage} at the end; the machine was shared), Node ${result.node}, redis-server ${result.redis}.

**What the run does.** One private redis-server on a free loopback port, with AOF on and \`appendfsync always\`,
and two instances of the demo app (\`examples/app.ts\`, separate processes, served as \`examples/demo.ts\` serves it)
on it. ${result.clients} clients, each with its own cookie jar, log in and then loop \`GET /\` (which counts a visit and
returns the count), with an occasional \`POST /login\` (a new session id, the data kept) or \`POST /logout\`, pausing
${result.thinkMs[0]}–${
    result.thinkMs[1]
  } ms between requests and switching instance on 70% of them, so that reads on one
instance follow writes on the other. Meanwhile Redis is SIGKILLed and restarted on the same port (the AOF replays),
SIGSTOPped and SIGCONTed, and its clients are killed (\`CLIENT KILL TYPE normal\`: the apps' data connections;
\`TYPE pubsub\`: their RESP2 subscriber connections, which carry the near-cache's invalidations), and two fuzzers send
forged cookies and garbage bodies. The load ran ${(result.loadMs / 1000).toFixed(0)} s. Afterwards the instances are
stopped, Redis is SIGKILLed and restarted once more, and every session is read from Redis directly.

## Headline

${
    table(["", "result"], [
      ["requests", `${samples.length} (${samples.filter((s) => s.status === 200).length} answered 200)`],
      ["worst latency", `${ms(worst)}, bound ${result.boundMs} ms (${overBound(result).length} requests over it)`],
      [
        "acknowledged writes lost",
        `${lost} (sessions checked in Redis after the run: ${check.sessions}, holding ${check.acknowledged} acknowledged visits)`
      ],
      ["read-your-writes violations (same instance)", findings.readYourWrites.length],
      ["monotonic-read violations", findings.monotonic],
      ["cross-instance stale reads", `${findings.crossInstance.length} of ${findings.checked} reads checked`],
      [
        "fuzz cases",
        `${result.fuzz.length}: ${fuzz5xx.length} 5xx outside faults, ${
          adopted.length + check.victimsChanged.length
        } forged ids adopted`
      ],
      ["app instance crashes", result.crashed.length === 0 ? "none" : result.crashed.join(", ")],
      [
        "revoked sessions that came back (regenerate racing sign-out-everywhere)",
        `${result.race.revived} of ${result.race.trials} races`
      ],
      [
        "aborted writes under a frozen Redis",
        `${result.aborts.requests}: heap ${mib(heapGrowth(result.aborts))}, ${result.aborts.fibersLeft} fibers left`
      ],
      ["verdict", v.failures.length === 0 ? "every promise below held" : `**broken:** ${v.failures.join("; ")}`]
    ])
  }

## Requests by status

${
    table(
      ["request", ...statuses.map(statusName)],
      kinds.map((kind) => [
        kindLabel[kind],
        ...statuses.map((status) => samples.filter((s) => s.kind === kind && s.status === status).length)
      ])
    )
  }

${
    table(["when", "requests", ...statuses.map(statusName)], [
      [
        "during a fault (its span plus the bound)",
        inFault.length,
        ...statuses.map((st) => inFault.filter((s) => s.status === st).length)
      ],
      ["calm", calm.length, ...statuses.map((st) => calm.filter((s) => s.status === st).length)]
    ])
  }

A 503 is the demo's answer when the store fails: the handler gets a typed \`RedisConnectionError\` and the app maps it.
${
    samples.some((s) => s.status === 0)
      ? `"No response" means the client gave up after 20 s or the connection failed: ${
        [...countBy(samples.filter((s) => s.status === 0), (s) => s.error ?? "unknown")].map(([e, n]) => `${e} (${n})`)
          .join(", ")
      }.`
      : "Every request got a response."
  }

## Latency against the bound

The bound is **${result.boundMs} ms** = \`commandTimeout\` (${result.commandTimeoutMs} ms, the store's default, read from
\`SessionConfig\`) + the longest reconnect backoff (${result.backoffMs} ms: ioredis retries at min(50 · 2ⁿ, 1000) ms) + ${result.allowanceMs} ms
of allowance for a shared, loaded two-core machine (HTTP parsing, two app processes, the load generator and Redis
itself compete for it). A request's Redis commands each end within \`commandTimeout\`, and a request that arrives just
as Redis comes back may wait for the next reconnect attempt. Faults are spaced wider than the bound, so that no
request meets two of them. A store that fails fast while Redis is down answers far inside the bound; one that waits
for \`commandTimeout\` answers near it.

${table(["status", "requests", "p50", "p99", "max"], byStatusWorst)}

${
    slow.length === 0
      ? "No request exceeded the bound."
      : `Requests over the bound (slowest first):\n\n${
        table(
          ["request", "instance", "status", "latency", "started", "fault"],
          slow.map((s) => [
            kindLabel[s.kind],
            s.instance,
            statusName(s.status),
            ms(s.ms),
            at(s.startedAt),
            faultOf(result, s.startedAt, s.ms)?.kind ?? "none"
          ])
        )
      }`
  }

## Faults

${
    table(
      ["at", "fault", "what", "connections killed", "non-200 in its window", "first 200 after it: A", "B"],
      result.faults.map((f) => [
        at(f.startedAt),
        f.kind,
        f.detail,
        f.kind.startsWith("CLIENT") || f.kind === "storm" ? f.killed : "",
        samples.filter((s) => s.status !== 200 && faultOf(result, s.startedAt, s.ms) === f).length,
        recovery(f, "A"),
        recovery(f, "B")
      ])
    )
  }

## Acknowledged writes

A 200 from \`GET /\` saying \`visits = n\` means that n was acknowledged. After the run, with the instances stopped and
Redis restarted from its AOF, each client's current session is read from Redis (\`HGETALL\`) and compared with the
highest count the client was acknowledged for it; a lower count, or no session, is a lost write. Logout legitimately
starts again from zero; login keeps the count under a new id. A client whose last login or logout failed may
legitimately have lost its session, and is left out (${check.uncertain} such clients). During the run, a session that
vanished although the client neither logged out nor saw a login or logout fail is counted as lost too.

- sessions checked: ${check.sessions}, holding ${check.acknowledged} acknowledged visits;
- lost after the run: ${check.lost.length}${
    check.lost.length === 0
      ? ""
      : ` (${
        check.lost.slice(0, 5).map((l) =>
          `client ${l.client}: acknowledged ${l.acknowledged}, stored ${String(l.stored)}`
        )
          .join("; ")
      })`
  };
- sessions that vanished during the run: ${findings.resets.length}${
    check.vanished.length === 0
      ? ""
      : ` (${
        check.vanished.slice(0, 5).map(({ reset: r, stored }) =>
          `client ${r.client} at ${
            at(r.at)
          } on ${r.instance}, ${r.lostVersions} visits acknowledged; after the run Redis holds ${
            stored === undefined ? "no session" : `${stored} visits`
          } under the id it had sent`
        ).join("; ")
      })`
  };
- sessions that vanished after the client's own login or logout had failed (legitimate: the failed request's DEL
  may run after its 503, when Redis thaws or the command is resent): ${
    findings.expectedResets + findings.lateResets
  }; of
  those, ${findings.lateResets} vanished only after a later request on the same session had succeeded: its acknowledged
  write went with the session, or, if it came after the DEL, the store's flush found the session destroyed and dropped
  the write without telling the handler (destroy wins over a concurrent write), so the 200 acknowledged nothing;
- stored counts above the acknowledged one with no failed request to explain them: ${check.unexplainedHigher}; counts that jumped by more than one during the run with no failed request before: ${findings.unexplainedJumps}.

## Consistency of reads

Each 200 is checked against what the same client had been acknowledged before:

- **read-your-writes (same instance):** the instance answered from a count older than one *it* had acknowledged to this
  client: ${findings.readYourWrites.length}${
    findings.readYourWrites.length === 0 ? "" : `: ${staleness(findings.readYourWrites)}`
  };
- **monotonic reads:** the client read a count older than one it had already read, on either instance: ${findings.monotonic};
- **cross-instance staleness:** an instance answered from a count older than one the *other* instance had acknowledged
  (its near-cache had not yet seen the invalidation): ${staleness(findings.crossInstance)}.

Because \`GET /\` writes back what it read plus one, each stale read also overwrote the newer count: ${findings.overwritten}
acknowledged visits were overwritten this way during the run. That is the near-cache's window, not Redis losing data:
the invalidation of a foreign write is asynchronous (about 15 µs on loopback when all is well) and is lost while the
subscriber connection is down, until the instance notices and clears its cache.

## Fuzzing

${result.fuzz.length} fuzzed requests, on both instances, during the whole run (faults included). A forged cookie must give a
fresh session under an id the server makes up: \`GET /\` answers \`visits: 1\` and no user, login answers \`visits: 0\`,
and no reply may carry a victim's id or the forged id. After the run, the ${check.victims} victims' sessions are read from Redis:
their count and user must be what they were before the fuzzers started.

${
    table(
      ["case", "tried", "statuses", "5xx outside faults", "adopted"],
      fuzzNames.map(([name, n]) => {
        const these = result.fuzz.filter((o) => o.fuzzCase.name === name)
        return [
          name,
          n,
          [...countBy(these, (o) => statusName(o.reply.status))].sort().map(([s, c]) => `${s}: ${c}`).join(", "),
          fuzz5xx.filter((o) => o.fuzzCase.name === name).length,
          these.filter((o) => o.adopted !== undefined).length
        ]
      })
    )
  }

- 5xx or no response outside any fault: ${fuzz5xx.length}${
    fuzz5xx.length === 0
      ? ""
      : ` (${
        fuzz5xx.slice(0, 5).map((o) => `${o.fuzzCase.name}: ${statusName(o.reply.status)} ${o.reply.body.slice(0, 80)}`)
          .join("; ")
      })`
  }; 5xx during faults (the store was down; not the fuzz's doing): ${
    result.fuzz.filter((o) => o.reply.status >= 500).length - fuzz5xx.filter((o) => o.reply.status >= 500).length
  };
- forged ids adopted: ${adopted.length}${
    adopted.length === 0 ? "" : ` (${adopted.slice(0, 5).map((o) => `${o.fuzzCase.name}: ${o.adopted}`).join("; ")})`
  }; victims' sessions changed: ${check.victimsChanged.length === 0 ? "none" : check.victimsChanged.join("; ")}.

## Sign out everywhere, racing a login on the other instance

${result.race.trials} races. Each: a user logs in on A and counts three visits; then, at once (one of the two with a
random head start of up to 10 ms), the same cookie logs in again on B (\`POST /login\`: \`login\`, which moves the session to a new
id) and signs out everywhere on A (\`POST /logout-everywhere\`). Afterwards Redis is searched for any session bound to
the user that holds those visits: that would be the revoked session brought back under a new id. A login that B
processed after the revocation starts a fresh session from zero visits, which is legitimate; so is the session B
moved before A's request read it (A then finds no session under the old cookie, answers 401, and revokes nothing).

- revoked sessions that came back: **${result.race.revived}** (of ${
    result.race.trials - result.race.movedBeforeRead - result.race.failed
  } races in which A revoked);
- races in which B's login answered with the moved session, which the revocation then ended too:
  ${result.race.movedFirst}; races in which B moved the session before A read it: ${result.race.movedBeforeRead};
  requests answered otherwise: ${result.race.failed}.

## Aborted writes under a frozen Redis

${result.aborts.requests} requests (${
    result.aborts.requests / result.aborts.batch
  } rounds of ${result.aborts.batch}, after one round of warm-up), each writing a new session (\`GET /\` without a
cookie), sent to A while Redis was SIGSTOPped; once every one waited in its write, its client hung up, and once A had
seen every client go, Redis was SIGCONTed. A's heap, after two full GCs, before the measured rounds and after them, and
the request fibers still alive (counted by a supervisor) once Redis answered again:

- heap: ${mib(result.aborts.heapBefore)} before, ${mib(result.aborts.heapAfter)} after: **${
    mib(heapGrowth(result.aborts))
  }** (${(heapGrowth(result.aborts) / result.aborts.requests).toFixed(0)} B per request; the bound is ${
    perRequestLimit / 1024
  } KiB per request). Each of those writes created a session, which A's near-cache keeps after the write (up to its
  capacity, 10,000 entries by default): that bounded cache, not the requests, accounts for most of the growth;
- request fibers left: **${result.aborts.fibersLeft}**; responses closed by their client before they were ended:
  ${result.aborts.aborted}.

Before the fix each such request's fiber waited for good for \`res.end\`'s callback, which Node never calls on a
destroyed socket: 5,000 of them kept 128 MiB.

## What we promise, and what we don't

We promise:

- **No acknowledged write is lost as long as Redis keeps its data.** A 200 means Redis acknowledged the write; with AOF
  and \`appendfsync always\`, Redis fsyncs it before acknowledging, so it survives \`kill -9\`. This run checks it after
  ${result.faults.filter((f) => f.kind === "kill -9 + restart").length + 1} SIGKILLs.
- **During an outage, requests fail within the bound** (\`commandTimeout\` plus at most one reconnect backoff) with a typed
  \`RedisConnectionError\`, which the demo maps to 503. Nothing hangs, and the first request after Redis returns succeeds
  (see "first 200 after it").
- **An instance never serves a count older than one it acknowledged itself** (read-your-writes on one instance), even
  while its connections are killed: it clears its near-cache when either connection closes and redoes its tracking
  setup on reconnect.
- **A forged, tampered, truncated or oversized cookie gives a fresh session, never an error and never someone else's
  session**; a correctly signed id that the server never created is not adopted (no session fixation). Garbage bodies
  get a 4xx, not a 5xx.
- **A revoked session never comes back**, not even through a login or regenerate on another instance that read it
  before the revocation.
- **A client that hangs up leaves nothing behind**, even while its request waits for a stalled Redis.

We do not promise:

- **A request that failed (503, timeout) may still have been applied.** The write may have reached Redis before the
  connection dropped; the client cannot know. Retrying a non-idempotent change is the app's decision.
- **Cross-instance reads may be briefly stale.** Another instance's write reaches this instance's near-cache as an
  asynchronous invalidation; a read in that window, or while the subscriber connection is down and before the
  instance notices, sees the older value (measured above). A read-modify-write such as the demo's counter then
  overwrites the newer value. Turn the cache off, or keep a user on one instance, where that matters.
- **Sessions are lost if Redis loses its data**: without persistence, with \`appendfsync everysec\` (up to a second of
  writes), on \`FLUSHALL\`, or on a failover to a replica that had not received them (see \`waitReplicas\`).
- **During an outage there is no service**: sessions live only in Redis, so every request that needs one fails until
  Redis is back. The near-cache is cleared when the connection drops; it is not a fallback.

## Reproduce

\`\`\`sh
npm run chaos                 # ~${Math.max(1, Math.round(result.durationS / 60))} min; rewrites this file
CHAOS_QUICK=1 npm run chaos   # ≤ 45 s smoke run (CI); report in a temp file; exits 1 if a promise broke
\`\`\`
`
}
