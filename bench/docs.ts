/**
 * Renders the results as the console table, docs/benchmarks.svg and
 * docs/benchmarks.md (generated: edit this template, not the page).
 */
import { type Chart, renderChart, type Row } from "./chart.js"
import { type Mode, modeLabels } from "./http/modes.js"
import type { Results } from "./report.js"
import { fmtOps, fmtUs, type Summary } from "./stats.js"

const storeRows: ReadonlyArray<
  readonly [
    op: keyof Results["raw"]["store"],
    title: string,
    contenders: ReadonlyArray<readonly [key: string, label: string]>
  ]
> = [
  ["hit", "cache-hit retrieve", [
    ["oursEffectLoop", "ours, inside one Effect program"],
    ["oursRunPromise", "ours, Effect.runPromise per call"],
    ["connectRedisGet", "connect-redis get"],
    ["rawIoredisHgetall", "raw ioredis HGETALL"],
    ["mapGet", "Map.get"]
  ]],
  ["miss", "miss retrieve", [
    ["ours", "ours (cache off), inside one Effect program"],
    ["oursRunPromise", "ours (cache off), Effect.runPromise per call"],
    ["connectRedisGet", "connect-redis get"],
    ["rawIoredisHgetallDecode", "raw ioredis HGETALL + decode"]
  ]],
  ["flush", "one-field flush", [
    ["ours", "ours (delta: 1 field)"],
    ["connectRedisSet", "connect-redis set (whole)"],
    ["rawIoredisHsetPexpire", "raw ioredis HSET + PEXPIRE"]
  ]],
  ["create", "create", [
    ["ours", "ours"],
    ["connectRedisSet", "connect-redis set"],
    ["rawIoredisHsetPexpire", "raw ioredis HSET + PEXPIRE"]
  ]],
  ["destroy", "destroy", [
    ["ours", "ours"],
    ["connectRedisDestroy", "connect-redis destroy"],
    ["rawIoredisDel", "raw ioredis DEL"]
  ]]
]

const seriesOf = (label: string): string =>
  label.startsWith("ours")
    ? (label.includes("runPromise") ? "ours (runPromise)" : "ours")
    : label.startsWith("connect")
    ? "connect-redis"
    : label.startsWith("Map")
    ? "Map.get"
    : "raw ioredis"

const httpOrder: ReadonlyArray<Mode> = ["ours", "express", "oursNoSession", "expressNoSession"]

const x = (v: number | null, digits = 1): string => (v === null ? "n/a" : `${v.toFixed(digits)}×`)

export const chartSvg = (r: Results): string => {
  const store = r.raw.store
  const storePanelRows: Array<Row> = storeRows.map(([op, title, contenders]) => ({
    label: title,
    bars: contenders.map(([key, label]) => {
      const s: Summary = store[op][key]!
      return { series: seriesOf(label), value: s.medianUs, text: fmtUs(s.medianUs) }
    })
  }))
  const http = r.raw.http.servers
  const chart: Chart = {
    title: "effect-session-redis vs express-session + connect-redis (same Redis, loopback)",
    colors: {
      "ours": "#2563eb",
      "ours (runPromise)": "#93c5fd",
      "connect-redis": "#f97316",
      "express-session": "#f97316",
      "raw ioredis": "#9ca3af",
      "Map.get": "#10b981",
      "no sessions (Effect)": "#bfdbfe",
      "no sessions (express)": "#fed7aa"
    },
    panels: [
      {
        title: "Store operations: median time per operation (log scale; shorter is better)",
        scale: "log",
        rows: storePanelRows,
        ticks: (["1 ns", "10 ns", "100 ns", "1 µs", "10 µs", "100 µs", "1 ms"] as const).map((label, i) => ({
          value: 10 ** (i - 3),
          label
        }))
      },
      {
        title: "HTTP, 90% reads / 10% writes, 64 connections: requests per second (longer is better)",
        scale: "linear",
        rows: [
          {
            label: "with sessions",
            bars: [
              { series: "ours", value: http.ours.requestsPerSec, text: `${http.ours.requestsPerSec.toFixed(0)} req/s` },
              {
                series: "express-session",
                value: http.express.requestsPerSec,
                text: `${http.express.requestsPerSec.toFixed(0)} req/s`
              }
            ]
          },
          {
            label: "same servers, no sessions",
            bars: [
              {
                series: "no sessions (Effect)",
                value: http.oursNoSession.requestsPerSec,
                text: `${http.oursNoSession.requestsPerSec.toFixed(0)} req/s`
              },
              {
                series: "no sessions (express)",
                value: http.expressNoSession.requestsPerSec,
                text: `${http.expressNoSession.requestsPerSec.toFixed(0)} req/s`
              }
            ]
          }
        ]
      },
      {
        title: "Correctness and Redis traffic (shorter is better; each row on its own scale)",
        scale: "row",
        rows: [
          {
            label: "updates lost of 100",
            bars: [
              { series: "ours", value: r.lostUpdates.ours, text: String(r.lostUpdates.ours) },
              {
                series: "express-session",
                value: r.lostUpdates.expressSession,
                text: String(r.lostUpdates.expressSession)
              }
            ]
          },
          {
            label: "commands per cached read",
            bars: [
              { series: "ours", value: r.commandsPerCachedRead.ours, text: String(r.commandsPerCachedRead.ours) },
              {
                series: "express-session",
                value: r.commandsPerCachedRead.expressSession,
                text: String(r.commandsPerCachedRead.expressSession)
              }
            ]
          }
        ]
      }
    ],
    footer: [
      `Cross-instance invalidation: median ${fmtUs(r.invalidation.latencyMedianUs)}, p99 ${
        fmtUs(r.invalidation.latencyP99Us)
      }; hit ratio across two instances ${(r.invalidation.hitRatio * 100).toFixed(1)}%.`,
      `${String(r.meta["date"])} · ${String(r.meta["cpuModel"])} × ${String(r.meta["cpus"])} · Node ${
        String(r.meta["node"])
      } · Redis ${String(r.meta["redis"])} · load average ${String(r.meta["loadAverage"])}`
    ]
  }
  return renderChart(chart)
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string =>
  [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((row) => `| ${row.join(" | ")} |`)
  ].join("\n")

const targetsTable = (r: Results) =>
  table(
    ["target", "goal", "measured", "met"],
    r.targets.map((
      t
    ) => [`\`${t.name}\``, t.goal, t.value === null ? "n/a" : String(t.value), t.met ? "yes" : "**no**"])
  )

const storeTable = (r: Results) =>
  table(
    ["operation", "contender", "ops/s (one at a time)", "median", "p99"],
    storeRows.flatMap(([op, title, contenders]) =>
      contenders.map(([key, label]) => {
        const s = r.raw.store[op][key]!
        return [
          title,
          label + (s.batched === undefined ? "" : ` (timed in batches of ${s.batched})`),
          fmtOps(s.opsPerSec),
          fmtUs(s.medianUs),
          fmtUs(s.p99Us)
        ]
      })
    )
  )

const httpTable = (r: Results) =>
  table(
    ["server", "req/s", "latency p50", "latency p99", "mean", "server CPU per request", "errors"],
    httpOrder.map((m) => {
      const s = r.raw.http.servers[m]
      return [
        modeLabels[m],
        s.requestsPerSec.toFixed(0),
        `${s.latencyP50Ms} ms`,
        `${s.latencyP99Ms} ms`,
        `${s.latencyMeanMs.toFixed(2)} ms`,
        `${s.cpuPerRequestUs.toFixed(1)} µs`,
        String(s.errors + s.non2xx)
      ]
    })
  )

const ratiosTable = (r: Results) =>
  table(["ratio", "value"], Object.entries(r.ratios).map(([k, v]) => [`\`${k}\``, v === null ? "n/a" : String(v)]))

export const markdown = (r: Results): string => {
  const inv = r.raw.invalidation
  const lu = r.raw.lostUpdates
  const cmd = r.raw.commands
  return `# Benchmarks

<!-- Generated by \`npm run bench\` (bench/docs.ts). Do not edit by hand. -->

effect-session-redis against what express users run today, express-session + connect-redis 10 (node-redis 5 client), and against raw ioredis commands, all in one run on one loopback Redis. The figures are ratios from one machine, not absolute claims: run it on yours.

![Benchmark chart](benchmarks.svg)

Reproduce with:

\`\`\`sh
${String(r.meta["command"])}
\`\`\`

It needs \`redis-server\` on PATH; it starts its own on a free loopback port (no persistence) and stops it at the end, and writes \`bench/results.json\` and this page. \`BENCH_QUICK=1 npm run bench\` is a short smoke run whose figures are not for comparison.

Measured ${String(r.meta["date"])} on ${String(r.meta["cpuModel"])} × ${String(r.meta["cpus"])} cores, Node ${
    String(r.meta["node"])
  }, Redis ${String(r.meta["redis"])}; the run took ${String(r.meta["durationS"])} s. Load average before / after: ${
    String(r.meta["loadAverage"])
  }${r.meta["contention"] ? ` (${String(r.meta["contention"])})` : ""}.

Every workload uses one session shape: ${String(r.meta["sessionFields"])} fields, ${
    String(r.meta["sessionJsonBytes"])
  } bytes of JSON.

## Targets

Goals, not assertions.

${targetsTable(r)}

## Ratios

${ratiosTable(r)}

${Object.entries(r.notes).map(([k, v]) => `- **${k}**: ${v}`).join("\n")}

## Store level

${storeTable(r)}

Our hit is shown twice: inside one Effect program (what a handler running in Effect pays per call) and through one \`Effect.runPromise\` per call (what a Promise-based caller pays; most of that is the cost of starting a fiber). connect-redis has no cache, so its "hit" and its miss are the same GET round trip. A flush in connect-redis rewrites the whole session; ours writes the one changed field.

## HTTP, read-mostly

Each of ${r.raw.http.connections} connections has its own session and cycles 9 reads and 1 write of one field, for ${r.raw.http.rounds} × ${r.raw.http.durationS} s per server after a ${r.raw.http.warmupS} s warm-up (autocannon in the bench process; each server in its own child process, so they get one core each).

${httpTable(r)}

Session overhead, the server time per request that sessions add (1/throughput with sessions minus without): ours ${
    r.ratios["sessionOverheadOursUs"] ?? "n/a"
  } µs, express-session ${r.ratios["sessionOverheadExpressUs"] ?? "n/a"} µs (\`sessionOverheadVsExpress\` = ${
    x(r.ratios["sessionOverheadVsExpress"] ?? null)
  }). Measured instead as the server process's CPU time per request: ours ${
    r.ratios["sessionCpuOverheadOursUs"] ?? "n/a"
  } µs, express-session ${r.ratios["sessionCpuOverheadExpressUs"] ?? "n/a"} µs (${
    x(r.ratios["sessionCpuOverheadVsExpress"] ?? null)
  }). Throughput with sessions: ${x(r.ratios["httpReadMostlyVsExpress"] ?? null, 2)} express's.

## Lost updates

${lu.ours.requests} concurrent requests to one session, each setting a different field; ${lu.ours.trials} trials each.

| stack | fields lost per trial (in Redis) | missing from the server's own view afterwards |
|---|---|---|
| ours (HttpSession, delta flush) | ${lu.ours.lostPerTrial.join(", ")} | ${
    lu.ours.missingFromServerViewPerTrial.join(", ")
  } |
| express-session + connect-redis | ${lu.expressSession.lostPerTrial.join(", ")} | ${
    lu.expressSession.missingFromServerViewPerTrial.join(", ")
  } |

express-session reads the whole session at the start of a request and writes the whole session back at the end, so concurrent requests overwrite each other (express-session #361, connect-redis #75). Ours writes only the changed fields.

## Redis commands per cached read

| stack | commands per read-only request | by command (${cmd.ours.requests} requests) |
|---|---|---|
| ours (HttpSession) | ${r.commandsPerCachedRead.ours} | \`${JSON.stringify(cmd.ours.byCommand)}\` |
| express-session + connect-redis | ${r.commandsPerCachedRead.expressSession} | \`${
    JSON.stringify(cmd.expressSession.byCommand)
  }\` |

## Cross-instance invalidation

Two stores A and B, with separate connections to the same Redis, stand for two app instances in one process.

- Invalidation latency, ${inv.latency.trials} trials. A polls its copy in a loop (about every ${
    fmtUs(inv.latency.pollIntervalMedianUs)
  }) while B's flush is in flight; the key was dropped before the first poll that sees the new value.
  - From B's flush being acknowledged to A serving the new value: median ${fmtUs(inv.latency.medianUs)}, p99 ${
    fmtUs(inv.latency.p99Us)
  }, max ${
    fmtUs(inv.latency.maxUs)
  }. In ${inv.latency.droppedBeforeAck} trials A had dropped the key before B's caller saw the acknowledgement (counted as 0): both replies arrive on the same loopback at about the same time.
  - From B sending its flush (so including B's round trip): median ${fmtUs(inv.latency.fromWriteSentMedianUs)}, p99 ${
    fmtUs(inv.latency.fromWriteSentP99Us)
  }. ${inv.latency.timedOut} trials timed out at 1 s.
- Hit ratio: ${inv.hitRatio.sessions} sessions read at random on A and B with ${
    inv.hitRatio.writeShare * 100
  }% writes, ${inv.hitRatio.operations} operations: ${
    (inv.hitRatio.ratio * 100).toFixed(1)
  }% (${inv.hitRatio.hits} hits and ${inv.hitRatio.misses} misses by the stores' own counters, ${inv.hitRatio.invalidations} invalidations, ${inv.hitRatio.writes} writes; Redis counted \`${
    JSON.stringify(inv.hitRatio.redisCommands)
  }\` over the run, misses and writes together). A write on one instance makes the other's next read of that session a miss. Reads that returned a version older than an already acknowledged write: ${inv.hitRatio.staleReads}${
    inv.hitRatio.staleReads > 0
      ? " (the operations run one after another in one process, so a read can run before the invalidation that the previous write caused has been read off the other instance's socket)"
      : ""
  }.

The raw figures are in [\`bench/results.json\`](../bench/results.json).
`
}

export const consoleSummary = (r: Results): string => {
  const lines = ["", "Summary", "======="]
  for (const [op, title, contenders] of storeRows) {
    for (const [key, label] of contenders) {
      const s = r.raw.store[op][key]!
      lines.push(
        `${title.padEnd(20)} ${label.padEnd(36)} ${fmtOps(s.opsPerSec).padStart(11)}  median ${
          fmtUs(s.medianUs).padStart(9)
        }  p99 ${fmtUs(s.p99Us).padStart(9)}`
      )
    }
  }
  lines.push("")
  for (const m of httpOrder) {
    const s = r.raw.http.servers[m]
    lines.push(
      `${modeLabels[m].padEnd(46)} ${
        s.requestsPerSec.toFixed(0).padStart(7)
      } req/s  p50 ${s.latencyP50Ms} ms  p99 ${s.latencyP99Ms} ms`
    )
  }
  lines.push("", "Ratios")
  for (const [k, v] of Object.entries(r.ratios)) lines.push(`  ${k.padEnd(34)} ${v === null ? "n/a" : v}`)
  lines.push(
    `  ${"lostUpdates".padEnd(34)} ours ${r.lostUpdates.ours}, express-session ${r.lostUpdates.expressSession}`
  )
  lines.push(
    `  ${
      "commandsPerCachedRead".padEnd(34)
    } ours ${r.commandsPerCachedRead.ours}, express-session ${r.commandsPerCachedRead.expressSession}`
  )
  lines.push(
    `  ${"invalidation".padEnd(34)} median ${fmtUs(r.invalidation.latencyMedianUs)}, p99 ${
      fmtUs(r.invalidation.latencyP99Us)
    }, hit ratio ${(r.invalidation.hitRatio * 100).toFixed(1)}%`
  )
  lines.push("", "Targets (goals, not assertions)")
  for (const t of r.targets) {
    lines.push(
      `  ${t.met ? "met    " : "MISSED "} ${t.name.padEnd(34)} ${t.goal.padEnd(10)} measured ${t.value ?? "n/a"}`
    )
  }
  return lines.join("\n")
}
