/**
 * Renders the results as the console table, docs/benchmarks-remote.svg,
 * docs/benchmarks.svg and docs/benchmarks.md (generated: edit this template,
 * not the page).
 */
import { type Chart, renderChart, type Row } from "./chart.js"
import type { FleetModeResults, FleetRun, FleetSummary } from "./fleet.js"
import { modeLabels } from "./http/modes.js"
import type { LoopbackMode } from "./httpReadMostly.js"
import type { RemoteMode } from "./remote/remoteLatency.js"
import { loadLimit, type Results } from "./report.js"
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
    ["connectRedisCscGet", "connect-redis get, client-side cache"],
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
    ["ours", "ours (1 field), inside one Effect program"],
    ["oursRunPromise", "ours (1 field), Effect.runPromise per call"],
    ["connectRedisSet", "connect-redis set (whole)"],
    ["rawIoredisHsetPexpire", "raw ioredis MULTI HSET PEXPIRE"]
  ]],
  ["create", "create", [
    ["ours", "ours, inside one Effect program"],
    ["oursRunPromise", "ours, Effect.runPromise per call"],
    ["connectRedisSet", "connect-redis set"],
    ["rawIoredisHsetPexpire", "raw ioredis MULTI HSET PEXPIRE"]
  ]],
  ["destroy", "destroy", [
    ["ours", "ours, inside one Effect program"],
    ["oursRunPromise", "ours, Effect.runPromise per call"],
    ["connectRedisDestroy", "connect-redis destroy"],
    ["rawIoredisDel", "raw ioredis DEL"]
  ]]
]

const seriesOf = (label: string): string =>
  label.startsWith("ours")
    ? (label.includes("runPromise") ? "ours (runPromise)" : "ours")
    : label.includes("client-side cache")
    ? "connect-redis (CSC)"
    : label.startsWith("connect")
    ? "connect-redis"
    : label.startsWith("Map")
    ? "Map.get"
    : "raw ioredis"

const httpOrder: ReadonlyArray<LoopbackMode> = [
  "ours",
  "express",
  "expressCsc",
  "expressOurs",
  "oursNoSession",
  "oursFloor",
  "oursWriteFloor",
  "oursPlatformMiddleware",
  "expressNoSession"
]

const remoteOrder: ReadonlyArray<RemoteMode> = [
  "ours",
  "oursWriteFloor",
  "oursNoSession",
  "expressCsc",
  "express",
  "expressNoSession"
]

const colors: Chart["colors"] = {
  "ours": "#2563eb",
  "ours (runPromise)": "#93c5fd",
  "connect-redis": "#f97316",
  "connect-redis (CSC)": "#b45309",
  "express-session": "#f97316",
  "express-session (CSC)": "#b45309",
  "express-session (our store)": "#7c3aed",
  "raw ioredis": "#9ca3af",
  "Map.get": "#10b981",
  "no sessions (Effect)": "#bfdbfe",
  "trivial middleware (Effect)": "#a5b4fc",
  "write floor (Effect)": "#818cf8",
  "platform middleware (Effect)": "#c7d2fe",
  "no sessions (express)": "#fed7aa",
  "p50": "#2563eb",
  "p99": "#93c5fd"
}

const seriesOfMode: Record<LoopbackMode, string> = {
  ours: "ours",
  oursNoSession: "no sessions (Effect)",
  oursFloor: "trivial middleware (Effect)",
  oursWriteFloor: "write floor (Effect)",
  oursPlatformMiddleware: "platform middleware (Effect)",
  express: "express-session",
  expressNoSession: "no sessions (express)",
  expressCsc: "express-session (CSC)",
  expressOurs: "express-session (our store)"
}

const shortLabels: Record<LoopbackMode, string> = {
  ours: "ours (HttpSession)",
  oursNoSession: "Effect, no sessions",
  oursFloor: "Effect, trivial middleware",
  oursWriteFloor: "Effect, trivial middleware + raw MULTI per write",
  oursPlatformMiddleware: "Effect, xForwardedHeaders",
  express: "express-session",
  expressNoSession: "express, no sessions",
  expressCsc: "express-session, CSC",
  expressOurs: "express-session, ExpressStore"
}

const fmtMs = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`)

const range = (pair: readonly [number, number], fmt: (v: number) => string): string => `${fmt(pair[0])}–${fmt(pair[1])}`

const loadLine = (r: Results): string =>
  `load average ${r.meta.loadAverage.before} / ${r.meta.loadAverage.after}${
    r.meta.underLoad ? " (LOADED MACHINE)" : ""
  }`

/** The chart a user should see first: per-request latency with Redis a network hop away. */
export const remoteChartSvg = (r: Results): string => {
  const remote = r.raw.remote
  const chart: Chart = {
    title: `Latency per request, Redis ${remote.redisRttMs.viaProxy.toFixed(2)} ms away (round trip); ${
      r.meta.underLoad ? "LOADED MACHINE, not for publishing" : "shorter is better"
    }`,
    colors,
    panels: [{
      title:
        `Read-mostly (9 reads, 1 write), ${remote.connections} connections and ${remote.ratePerSec} req/s per server, all loaded at once: p50 and p99 (log scale)`,
      scale: "log",
      rows: remoteOrder.map((m) => {
        const s = remote.servers[m]
        return {
          label: shortLabels[m],
          bars: [
            { series: "p50", value: s.latencyP50Ms, text: fmtMs(s.latencyP50Ms) },
            { series: "p99", value: s.latencyP99Ms, text: fmtMs(s.latencyP99Ms) }
          ]
        }
      }),
      ticks: ([[0.1, "0.1 ms"], [1, "1 ms"], [10, "10 ms"], [100, "100 ms"]] as const).map(([value, label]) => ({
        value,
        label
      }))
    }],
    footer: [
      `p50 with sessions ÷ without: ours ${x(r.ratios["remoteLatencyP50VsNoSession"] ?? null, 2)} (write floor ${
        x(r.ratios["remoteLatencyP50WriteFloorVsNoSession"] ?? null, 2)
      }), express-session ${
        x(r.ratios["remoteLatencyP50VsNoSessionExpress"] ?? null, 2)
      }, express-session on node-redis's CSC ${x(r.ratios["remoteLatencyP50VsNoSessionExpressCsc"] ?? null, 2)}.`,
      `Median of ${remote.rounds} rounds of ${remote.durationS} s, every server loaded at once; the proxy adds ${remote.delayMsEachWay} ms each way.`,
      `${r.meta.date} · ${r.meta.cpuModel} × ${r.meta.cpus} · Node ${r.meta.node} · Redis ${r.meta.redis} · ${
        loadLine(r)
      }`
    ]
  }
  return renderChart(chart)
}

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
  const httpRows = (
    modes: ReadonlyArray<LoopbackMode>,
    value: (m: LoopbackMode) => number,
    fmt: (v: number) => string
  ) => modes.map((m) => ({ series: seriesOfMode[m], value: value(m), text: fmt(value(m)) }))
  const chart: Chart = {
    title: `effect-session-redis vs express-session + connect-redis (same Redis, loopback)${
      r.meta.underLoad ? ": LOADED MACHINE, not for publishing" : ""
    }`,
    colors,
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
        title:
          `HTTP, 90% reads / 10% writes, ${r.raw.http.connections} connections: server CPU per request (shorter is better)`,
        scale: "linear",
        rows: [
          {
            label: "with sessions",
            bars: httpRows(
              ["ours", "express", "expressCsc", "expressOurs"],
              (m) => http[m].cpuPerRequestUs,
              (v) => `${v.toFixed(1)} µs`
            )
          },
          {
            label: "no sessions / floor",
            bars: httpRows(
              ["oursNoSession", "oursFloor", "oursPlatformMiddleware", "expressNoSession"],
              (m) => http[m].cpuPerRequestUs,
              (v) => `${v.toFixed(1)} µs`
            )
          }
        ]
      },
      {
        title: "The same: requests per second (longer is better)",
        scale: "linear",
        rows: [
          {
            label: "with sessions",
            bars: httpRows(
              ["ours", "express", "expressCsc", "expressOurs"],
              (m) => http[m].requestsPerSec,
              (v) => `${v.toFixed(0)} req/s`
            )
          },
          {
            label: "no sessions",
            bars: httpRows(
              ["oursNoSession", "expressNoSession"],
              (m) => http[m].requestsPerSec,
              (v) => `${v.toFixed(0)} req/s`
            )
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
              },
              {
                series: "express-session (CSC)",
                value: r.commandsPerCachedRead.expressSessionCsc,
                text: String(r.commandsPerCachedRead.expressSessionCsc)
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
      `${r.meta.date} · ${r.meta.cpuModel} × ${r.meta.cpus} · Node ${r.meta.node} · Redis ${r.meta.redis} · ${
        loadLine(r)
      }`
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
    ["operation", "contender", "ops/s (one at a time)", "median", "rounds (min–max)", "p99"],
    storeRows.flatMap(([op, title, contenders]) =>
      contenders.map(([key, label]) => {
        const s = r.raw.store[op][key]!
        return [
          title,
          label + (s.batched === undefined ? "" : ` (timed in batches of ${s.batched})`),
          fmtOps(s.opsPerSec),
          fmtUs(s.medianUs),
          s.spreadUs === undefined ? "n/a" : range(s.spreadUs, fmtUs),
          fmtUs(s.p99Us)
        ]
      })
    )
  )

const httpTable = (r: Results) =>
  table(
    ["server", "server CPU per request", "rounds (min–max)", "req/s", "rounds (min–max)", "p50", "p99", "errors"],
    httpOrder.map((m) => {
      const s = r.raw.http.servers[m]
      const spread = r.raw.http.spread[m]
      return [
        modeLabels[m],
        `${s.cpuPerRequestUs.toFixed(1)} µs`,
        range(spread.cpuPerRequestUs, (v) => v.toFixed(1)),
        s.requestsPerSec.toFixed(0),
        range(spread.requestsPerSec, (v) => v.toFixed(0)),
        `${s.latencyP50Ms} ms`,
        `${s.latencyP99Ms} ms`,
        String(s.errors + s.non2xx)
      ]
    })
  )

const remoteTable = (r: Results) =>
  table(
    [
      "server",
      "p50",
      "rounds (min–max)",
      "p99",
      "rounds (min–max)",
      "mean",
      "server CPU per request",
      "late",
      "errors"
    ],
    remoteOrder.map((m) => {
      const s = r.raw.remote.servers[m]
      const spread = r.raw.remote.spread[m]
      return [
        modeLabels[m],
        fmtMs(s.latencyP50Ms),
        range(spread.latencyP50Ms, fmtMs),
        fmtMs(s.latencyP99Ms),
        range(spread.latencyP99Ms, fmtMs),
        fmtMs(s.latencyMeanMs),
        `${s.cpuPerRequestUs.toFixed(1)} µs`,
        `${s.late} of ${s.requests}`,
        String(s.errors + s.non2xx)
      ]
    })
  )

const ratiosTable = (r: Results) =>
  table(
    ["ratio", "value", "each round"],
    Object.entries(r.ratios).map((
      [k, v]
    ) => [
      `\`${k}\``,
      v === null ? "n/a" : String(v),
      r.ratioRounds[k]?.map((x) => (x === null ? "n/a" : String(x))).join(", ") ?? ""
    ])
  )

const us = (v: number | null | undefined) => (v === null || v === undefined ? "n/a" : `${v} µs`)

export const markdown = (r: Results): string => {
  const inv = r.raw.invalidation
  const lu = r.raw.lostUpdates
  const cmd = r.raw.commands
  const remote = r.raw.remote
  const http = r.raw.http.servers
  const warning = r.meta.underLoad
    ? `\n> **Warning: figures from a loaded machine: not for publishing.** The load average was ${r.meta.loadAverage.before} when the run started (limit ${loadLimit}).\n`
    : ""
  return `# Benchmarks
${warning}
<!-- Generated by \`npm run bench\` (bench/docs.ts). Do not edit by hand. -->

effect-session-redis against what express users run today, express-session + connect-redis 10 (node-redis 5 client), against the strongest express setup known (the same on node-redis 5's client-side cache), and against raw ioredis commands, all in one run on one Redis. The figures are ratios from one machine, not absolute claims: run it on yours.

## Latency with Redis a network hop away

![Latency per request with Redis a network hop away](benchmarks-remote.svg)

Redis sits behind a small TCP proxy that delays every chunk by ${remote.delayMsEachWay} ms each way (this kernel has no netem), so a Redis round trip takes ${
    fmtMs(remote.redisRttMs.viaProxy)
  } instead of ${
    fmtMs(remote.redisRttMs.direct)
  }. Each server gets ${remote.connections} connections sending the read-mostly cycle (9 reads, 1 one-field write of their own session) at ${remote.ratePerSec} requests per second, paced (open loop), far below what any server here saturates at: the latency is what one request costs, not queueing. All servers are loaded at the same time, their requests interleaved evenly, so that whatever else the machine does falls on all of them alike: loaded one after another, the same server's median moved by more than the differences between servers. Median of ${remote.rounds} rounds of ${remote.durationS} s, after a ${remote.warmupS} s warm-up (a server that has not compiled its hot paths yet is several times slower).

At this rate each server is idle between requests, and the server CPU per request is far higher than under saturation (the µs/req column): every request runs on cold caches, on two cores shared with five other servers, the load generator, the proxy and Redis. The difference between ours and the same server without sessions is therefore larger here than the saturated CPU figures in the overview below suggest, and it is CPU, not waiting: no read sends a Redis command.

A floor runs with them: the same @effect/platform server with a trivial middleware that, on each write, sends our flush's commands by hand through ioredis (the write floor: what any session library that writes through to Redis must at least do, with no cookie, read or cache).

${remoteTable(r)}

Sessions multiply our median latency by ${
    x(r.ratios["remoteLatencyP50VsNoSession"] ?? null, 2)
  } (\`remoteLatencyP50VsNoSession\`: a read is a near-cache hit, no round trip), express's by ${
    x(r.ratios["remoteLatencyP50VsNoSessionExpress"] ?? null, 2)
  } (every read waits for a GET and an EXPIRE), and express's on node-redis's client-side cache by ${
    x(r.ratios["remoteLatencyP50VsNoSessionExpressCsc"] ?? null, 2)
  }. The write floor's is ${
    x(r.ratios["remoteLatencyP50WriteFloorVsNoSession"] ?? null, 2)
  } (\`remoteLatencyP50WriteFloorVsNoSession\`): the writes' round trips themselves barely move the median, so what separates ours from the write floor is our CPU per request, multiplied by the cold caches of a server that idles between requests. "late" counts requests sent after their slot because the previous one on that connection had not answered yet.

## Overview

![Benchmark chart](benchmarks.svg)

Reproduce with:

\`\`\`sh
${r.meta.command}
\`\`\`

It needs \`redis-server\` on PATH; it starts its own on a free loopback port (no persistence) and stops it at the end, and writes \`bench/results.json\` and this page. \`BENCH_QUICK=1 npm run bench\` is a short smoke run whose figures are not for comparison (it writes \`bench/results.quick.json\` only). \`BENCH_REMOTE_DELAY_MS\` and \`BENCH_REMOTE_RATE\` set the proxy's delay and the remote workload's rate.

Measured ${r.meta.date} on ${r.meta.cpuModel} × ${r.meta.cpus} cores, Node ${r.meta.node}, Redis ${r.meta.redis}; the run took ${r.meta.durationS} s. Load average (1 min) before / after: ${r.meta.loadAverage.before} / ${r.meta.loadAverage.after}${
    r.meta.underLoad ? " (a loaded machine: see the warning above)" : ""
  }. Every contender runs once per round in rotating order, over 3 rounds; figures are medians over the rounds, with the lowest and highest round beside them.

Every workload uses one session shape: ${r.meta.sessionFields} fields, ${r.meta.sessionJsonBytes} bytes of JSON.

## Targets

Goals, not assertions.

${targetsTable(r)}

## Ratios

${ratiosTable(r)}

${Object.entries(r.notes).map(([k, v]) => `- **${k}**: ${v}`).join("\n")}

## Store level

${storeTable(r)}

Our operations are shown twice: inside one Effect program (what a handler running in Effect pays per call) and through one \`Effect.runPromise\` per call (what a Promise-based caller pays; most of the difference is the cost of starting a fiber). Raw ioredis uses automatic pipelining, as our store's client does by default. connect-redis has no cache, so its "hit" and its miss are the same GET round trip; on node-redis's client-side cache its hit sends nothing. A flush in connect-redis rewrites the whole session; ours writes the one changed field.

## HTTP, read-mostly, loopback

Each of ${r.raw.http.connections} connections has its own session and cycles 9 reads and 1 write of one field, closed loop (the servers are saturated), ${r.raw.http.rounds} interleaved rounds × ${r.raw.http.durationS} s per server after a ${r.raw.http.warmupS} s warm-up (autocannon in the bench process; each server in its own child process). Server CPU time per request is the headline: unlike throughput, other processes on the machine do not take it away.

${httpTable(r)}

Session overhead as server CPU per request (with sessions minus the same server without): ours ${
    us(r.ratios["sessionCpuOverheadOursUs"])
  }, express-session ${us(r.ratios["sessionCpuOverheadExpressUs"])} (\`sessionCpuOverheadVsExpress\` = ${
    x(r.ratios["sessionCpuOverheadVsExpress"] ?? null)
  }), express-session on node-redis's client-side cache ${us(r.ratios["sessionCpuOverheadExpressCscUs"])} (${
    x(r.ratios["sessionCpuOverheadVsExpressCsc"] ?? null)
  }). From throughput instead (1/throughput with sessions minus without): ours ${
    us(r.ratios["sessionOverheadOursUs"])
  }, express-session ${us(r.ratios["sessionOverheadExpressUs"])} (\`sessionOverheadVsExpress\` = ${
    x(r.ratios["sessionOverheadVsExpress"] ?? null)
  }). Throughput with sessions: ${x(r.ratios["httpReadMostlyVsExpress"] ?? null, 2)} express's.

The Express adapter (\`effect-session-redis/express\`, our engine under express-session, same routes as the express-session contender): its session overhead is ${
    us(r.ratios["sessionCpuOverheadExpressOursUs"])
  } per request, ${
    x(r.ratios["expressStoreCpuOverheadVsConnectRedis"] ?? null)
  } less than connect-redis's (\`expressStoreCpuOverheadVsConnectRedis\`), and its throughput ${
    x(r.ratios["expressStoreVsConnectRedis"] ?? null, 2)
  } connect-redis's (\`expressStoreVsConnectRedis\`). express-session itself still reads, copies, hashes and re-serializes the session on every request, so most of express-session's cost remains; what goes away is the Redis traffic of a read.

How much of our cost is the framework's middleware machinery: the same @effect/platform server with a trivial middleware (it reads the request from the context, registers an identity pre-response handler and provides a service, as HttpSession's middleware does) costs ${
    us(r.ratios["middlewareFloorCpuUs"])
  } per request over no middleware; @effect/platform's own \`HttpMiddleware.xForwardedHeaders\` costs ${
    us(r.ratios["platformMiddlewareCpuUs"])
  }. HttpSession costs ${us(r.ratios["sessionCpuOverheadOverFloorUs"])} over the trivial middleware (${
    http.ours.cpuPerRequestUs.toFixed(1)
  } µs per request against ${http.oursFloor.cpuPerRequestUs.toFixed(1)} µs, and ${
    http.oursNoSession.cpuPerRequestUs.toFixed(1)
  } µs with no middleware).

The least any session middleware that writes through to Redis can cost in this cycle, measured: the trivial middleware plus, on each write, our flush's commands sent by hand through ioredis (\`MULTI HSET HINCRBY PEXPIRE\`, no cookie, no read, no cache) costs ${
    us(r.ratios["writeFloorCpuUs"])
  } per request over no sessions (\`writeFloorCpuUs\`; a Redis round trip from an HTTP handler is expensive here, about ten times the command's own client CPU). Against express-session's overhead, that floor would score ${
    x(r.ratios["sessionCpuOverheadVsExpressAtWriteFloor"] ?? null)
  } (\`sessionCpuOverheadVsExpressAtWriteFloor\`): the best ratio a session library with no cost of its own could reach on this machine. HttpSession costs ${
    us(r.ratios["sessionCpuOverheadOverWriteFloorUs"])
  } per request over the write floor.

### Where HttpSession's CPU goes

Profiles of the read-mostly cycle (\`npx tsx bench/profileHttp.ts --mixed ours oursNoSession\`, and \`--write\` for writes), 2026-11-26:
- A read of a cached session is within a few µs of the trivial middleware: the rest is spread thin (the cookie parse, one map lookup for the verified cookie, the cache's \`Ref\`, a dozen Effect steps). Effect steps were counted with a supervisor: 71 per read request in the app (29 without sessions), 97 per write.
- A write costs about ten times a read. Most of it is ioredis (building and sending the \`MULTI\`, about 25 µs, and parsing the replies) and the garbage collector; the raw \`MULTI\` alone, sent from a handler, costs about 60 µs over no sessions. ioredis's \`commandTimeout\` set a timer per command (five per flush, each cleared with a \`delete\` that slows the command object); the standalone client now goes without it, and the store's own bound (one timer per call) covers every call: 167 → 159 µs per write request in an A/B run. It had also been the only thing that settled the commands ioredis drops when a ready connection closes (with \`autoResendUnfulfilledCommands\` off they are discarded, never rejected); without it an auto-pipeline among them never finished and held back every later command on the client. The store now fails those commands itself at the close, at once, as \`Closed\`.
- Three causes were found and removed in this round, with profiles, micro-benchmarks and A/B runs: per-request closures that tsx (which runs these benchmarks) wraps in \`__name\` calls, about 3 µs per request; session data that V8 kept as hash tables because it was built key by key, so every spread of \`session.data\` cost about 3 µs and a flush's own work 8 µs (now under 2); and an \`HEXISTS\` in every flush, now answered by the version that the \`HINCRBY\` returns. Together, in three A/B runs of the old and the new code side by side (5 interleaved rounds each, same workload): 48 → 35, 51 → 36 and 42 → 40 µs of session CPU per request; the machine was noisier during the third.
- Providing the service by setting the context by hand instead of \`Effect.provideService\` takes 19 fewer Effect steps per request (52 per read), yet measured about 25 µs more CPU per request in an A/B run; HttpSession uses \`provideService\`.
- What is ours, per request kind, against the floors (read-only, write-only and read-mostly cycles loaded separately, 2026-11-26: server CPU per request, medians of 3 rounds, 64 connections): a read costs about 6 µs more than the trivial middleware (76 against 70 µs), a write about 25 µs more than the write floor's hand-sent \`MULTI\` (153 against 128 µs). In the read-mostly cycle that is about 8 µs per request over the write floor, which itself costs about 20 µs over no sessions. For \`sessionCpuOverheadVsExpress\` ≥ 5, our whole overhead would have to be a fifth of express-session's: with express-session's overhead at 114 µs (this run) that leaves under 3 µs above the write floor; at 144 µs (another quiet run today), under 9 µs.
- Two cheaper write forms were measured and rejected. One \`EVALSHA\` doing \`HSET HINCRBY PEXPIRE\` costs ioredis about a fifth of the client CPU of the \`MULTI\` (6.6 against 33 µs in a micro-benchmark), but Redis 7.0 ignores \`NOLOOP\` for writes made inside scripts under \`BCAST\` tracking: every write of ours came back as an invalidation of our own entry, and the next read was a miss. The same three commands sent without \`MULTI\`, auto-pipelined, cost 26 µs less per HTTP write, but are not atomic: another instance's flush landing between our \`HSET\` and \`HINCRBY\` would read an unchanged version and cache a view without our field, the very same-cycle problem the version exists for.

### Why node-redis's client-side cache barely helps express-session

CPU profiles of the server child on read-only requests (\`npx tsx bench/profileHttp.ts expressCsc express\`, 2026-11-26, on a busy machine) show the cache doing its job: a hit inside node-redis (\`handleCache\`: the cache key, a \`structuredClone\` of the stored string) costs about 3 µs, against about 10 µs of client CPU for plain connect-redis's GET and EXPIRE. That is a few percent of the request.
express-session still calls \`store.get\` on every request and redoes all of its own work on a hit: connect-redis \`JSON.parse\`s the whole session, express-session rebuilds its Session and Cookie objects (\`inflate\`, about 20 µs), verifies the cookie's HMAC, and hashes the whole session twice (\`JSON.stringify\` + SHA-1, on load and again at the end to decide whether to save: about 40 µs); the garbage all this leaves costs the collector about as much again (about 40 µs).
So a read-only request cost about the same CPU with and without the cache (228 and 251 µs per request there; in the read-mostly table above, compare \`sessionCpuOverheadExpressCscUs\` with \`sessionCpuOverheadExpressUs\`): the cache removes the round trips (latency, above), not the CPU.
In the read-mostly cycle there is one more cost: node-redis turns tracking on without NOLOOP, so each write (connect-redis rewrites the whole session with SET) invalidates the writer's own cached entry, and the next read is a GET round trip again.
Our near-cache hit returns the decoded session as it is: no parse, copy or hash.

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
| express-session + connect-redis, node-redis client-side cache | ${r.commandsPerCachedRead.expressSessionCsc} | \`${
    JSON.stringify(cmd.expressSessionCsc.byCommand)
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

${fleetSection(r)}${trackingTableSection(r)}The raw figures are in [\`bench/results.json\`](../bench/results.json).
`
}

const percent = (v: number | null) => (v === null ? "n/a" : `${(v * 100).toFixed(1)}%`)

const fleetRow = (s: FleetSummary): ReadonlyArray<string> => [
  String(s.idle),
  fmtUs(s.writerCpuPerWriteUs),
  s.idle === 0 ? "–" : fmtUs(s.idleCpuPerWriteUs),
  s.idle === 0 ? "–" : fmtUs(s.idleCpuPerWritePerInstanceUs),
  s.idleCpuVsWriter === null ? "–" : percent(s.idleCpuVsWriter),
  fmtUs(s.redisCpuPerWriteUs),
  s.redisCpuVsAlone === null ? "–" : `${s.redisCpuVsAlone.toFixed(2)}×`,
  range(s.spread.redisCpuPerWriteUs, fmtUs)
]

/** The floor under the per-write figures: the same window with nobody writing (6 idle instances). */
const fleetQuiet = (m: FleetModeResults): string => {
  const quiet = m.perRound.flatMap((runs) => runs.flatMap((run) => (run.quiet === undefined ? [] : [run.quiet])))
  if (quiet.length === 0) return ""
  const med = (f: (q: NonNullable<FleetRun["quiet"]>) => number) => {
    const sorted = quiet.map(f).sort((a, b) => a - b)
    return sorted[sorted.length >> 1]!
  }
  return ` With ${
    Math.max(...m.byIdle.map((s) => s.idle))
  } idle instances and nobody writing, over a window as long as the write phase, the same division gives ${
    fmtUs(med((q) => q.idleCpuPerWriteUs))
  } for the idle instances and ${
    fmtUs(med((q) => q.redisCpuPerWriteUs))
  } for Redis: the floor the figures above stand on (the time itself, the start and stop messages, V8's background threads, Redis's cron).`
}

const fleetSection = (r: Results): string => {
  const fleet = r.raw.fleet
  if (fleet === undefined) return ""
  const modes = fleet.modes.map((m) => {
    const first = m.perRound[0]?.find((run) => run.idle === Math.max(...fleet.idleCounts))
    return `### ${m.label} (\`cache: ${m.setting}\`)

${
      table(
        [
          "idle instances",
          "writer CPU per write",
          "idle instances' CPU per write, all",
          "per idle instance",
          "idle ÷ writer",
          "Redis CPU per write",
          "Redis ÷ writer alone",
          "Redis, rounds (min–max)"
        ],
        m.byIdle.map(fleetRow)
      )
    }

With every instance open, Redis's \`CLIENT LIST\` showed ${m.redisSaw.trackingClients} tracking connections, ${m.redisSaw.broadcastClients} of them in BCAST mode.${
      first === undefined
        ? ""
        : ` In the first round with the most idle instances, the writer's reads were ${first.writerHits} hits and ${first.writerMisses} misses, and the idle instances dropped ${first.idleInvalidations} entries and held ${first.idleCached} at the end.`
    }${fleetQuiet(m)}
`
  })
  const skipped = fleet.skipped.map((s) => `- \`${s.mode}\` was not run: ${s.reason}.`).join("\n")
  return `## A fleet on one Redis

What one instance's writes cost the rest of the fleet. One writing instance and ${
    fleet.idleCounts.join(", ")
  } idle ones, each a Node process with its own store, on one Redis. Each idle instance makes and reads ${fleet.idleSessions} sessions of its own, so that it caches and tracks them, and none of the written ones. The writer makes ${fleet.writerSessions} sessions, then writes each ${fleet.writesPerSession} times: a cache-hit read and a one-field flush, ${fleet.concurrency} at once (${
    fleet.writerSessions * fleet.writesPerSession
  } writes). CPU time of the write phase only, divided by the number of writes: each instance's own \`process.cpuUsage()\` between a start and a stop message (an idle instance answers the stop once it has read what Redis sent it), and Redis's \`used_cpu_user\` + \`used_cpu_sys\`. Medians over ${fleet.rounds} interleaved round${
    fleet.rounds === 1 ? "" : "s"
  }, after a warm-up run per mode; each run's writer first writes each of its sessions once, untimed, before the idle instances open.

Idle instances' CPU per write ÷ the writer's (\`fleetIdleCpuVsWriter\`, the worst N): ${
    percent(r.ratios["fleetIdleCpuVsWriter"] ?? null)
  }, goal ≤ 5%; Redis's CPU per write with 6 idle instances ÷ alone (\`fleetRedisCpuWith6VsAlone\`): ${
    x(r.ratios["fleetRedisCpuWith6VsAlone"] ?? null, 2)
  }, goal ≤ 1.15×. The same in broadcast mode: ${percent(r.ratios["fleetBroadcastIdleCpuVsWriter"] ?? null)} and ${
    x(r.ratios["fleetBroadcastRedisCpuWith6VsAlone"] ?? null, 2)
  }. On a machine with few cores these figures move with the load: a writer whose round trips take longer batches more commands per write to the socket (ioredis pipelines automatically), which lowers its own and Redis's CPU per write.${
    fleet.modes.some((m) => m.mode === "keys")
      ? " With per-key tracking Redis sends the idle instances nothing for these writes, so its work per write is the same whatever N: how far its `Redis ÷ writer alone` column is from 1.00× shows how precisely this machine measures that ratio."
      : ""
  }

${modes.join("\n")}${skipped === "" ? "" : `\n${skipped}\n`}
`
}

const bytes = (b: number) => `${b} B`

const trackingTableSection = (r: Results): string => {
  const t = r.raw.trackingTable
  if (t === undefined) return ""
  const store = t.store === null
    ? `One store instance was not measured: ${t.storeSkipped ?? "n/a"}.`
    : `One store instance (\`cache: ${t.store.setting}\`) reading ${t.store.keys} sessions left ${t.store.tableKeys} keys and ${t.store.tableItems} items in the table, ${
      bytes(t.store.trackedBytesPerKey)
    } per session: what the emulation above measures.`
  const storeEviction = t.storeEviction === null
    ? ""
    : ` With \`tracking-table-max-keys\` ${t.storeEviction.limit}, the same store read ${t.storeEviction.tracked} sessions, another client wrote each once, and the store read them all again, ${t.storeEviction.msBetweenReads} ms after the first read (\`cache.maxStaleness\` ${t.storeEviction.maxStalenessMs} ms): ${t.storeEviction.invalidations} invalidations had arrived, the cache was in mode ${t.storeEviction.cacheMode}, and ${t.storeEviction.staleReads} reads returned the old value.`
  return `## Redis's tracking table

What per-key tracking costs Redis, on a redis-server of its own (\`used_memory\`, so nothing else moves it). Session hashes in our data model (${r.meta.sessionFields} fields), keys of ${t.sessionKeyBytes} bytes (\`session:\` and a 43-character id). The tracking client is what the store sets up: a RESP2 connection subscribed to \`__redis__:invalidate\`, and a data connection with \`CLIENT TRACKING ON REDIRECT <id> NOLOOP\` reading every session once (an \`HGET\` of its version field: Redis tracks a key whichever command reads it). A second data connection then reads the same keys: one more instance caching the same sessions.

${
    table(
      [
        "session keys",
        "a session hash",
        "read untracked",
        "tracked by one client",
        "each more client",
        "left after both disconnected",
        "table: keys / items (1 client, 2, after)"
      ],
      t.sizes.map((s) => [
        String(s.keys),
        bytes(s.sessionBytesPerKey),
        bytes(s.untrackedReadBytesPerKey),
        bytes(s.trackedBytesPerKey),
        bytes(s.secondClientBytesPerKey),
        bytes(s.leftAfterDisconnectBytesPerKey),
        `${s.table.oneClient.keys} / ${s.table.oneClient.items}, ${s.table.twoClients.keys} / ${s.table.twoClients.items}, ${s.table.afterDisconnect.keys} / ${s.table.afterDisconnect.items}`
      ])
    )
  }

All figures per key. Redis forgets a disconnected client's keys lazily: they stay in the table (and count towards \`tracking-table-max-keys\`) until the key changes, expires or is evicted from the table. ${store}${storeEviction}

\`tracking-table-max-keys\` below what the clients track: one client reads ${
    t.maxKeys[0]?.tracked ?? "n/a"
  } keys with the limit at ${t.maxKeys[0]?.limit ?? "n/a"}, then another client writes every key once.

${
    table(
      ["tracking", "table keys after the reads", "evicted keys announced while reading", "keys never announced"],
      t.maxKeys.map((m) => [
        m.noloop ? "with NOLOOP (as the store)" : "without NOLOOP",
        String(m.tableKeysAfterReads),
        String(m.announcedWhileReading),
        String(m.neverAnnounced)
      ])
    )
  }

${
    t.maxKeys.some((m) => m.noloop && m.neverAnnounced > 0)
      ? `Redis evicts keys from a full table while it processes a command, and a NOLOOP client is not told about the keys evicted during its own commands (Redis skips invalidations for "the current client"): those keys leave the table unannounced, and a later write by anyone else is not announced either.

`
      : ""
  }`
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
  lines.push("", "HTTP, loopback (median of rounds)")
  for (const m of httpOrder) {
    const s = r.raw.http.servers[m]
    lines.push(
      `  ${modeLabels[m].padEnd(54)} CPU ${s.cpuPerRequestUs.toFixed(1).padStart(6)} µs/req ${
        s.requestsPerSec.toFixed(0).padStart(7)
      } req/s  p50 ${s.latencyP50Ms} ms  p99 ${s.latencyP99Ms} ms`
    )
  }
  lines.push("", `HTTP, Redis ${r.raw.remote.redisRttMs.viaProxy.toFixed(3)} ms away (median of rounds)`)
  for (const m of remoteOrder) {
    const s = r.raw.remote.servers[m]
    lines.push(`  ${modeLabels[m].padEnd(54)} p50 ${fmtMs(s.latencyP50Ms).padStart(9)}  p99 ${fmtMs(s.latencyP99Ms)}`)
  }
  lines.push("", "Ratios")
  for (const [k, v] of Object.entries(r.ratios)) lines.push(`  ${k.padEnd(34)} ${v === null ? "n/a" : v}`)
  lines.push(
    `  ${"lostUpdates".padEnd(34)} ours ${r.lostUpdates.ours}, express-session ${r.lostUpdates.expressSession}`
  )
  lines.push(
    `  ${
      "commandsPerCachedRead".padEnd(34)
    } ours ${r.commandsPerCachedRead.ours}, express-session ${r.commandsPerCachedRead.expressSession}, with CSC ${r.commandsPerCachedRead.expressSessionCsc}`
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
