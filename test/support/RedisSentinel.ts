/**
 * A real Sentinel deployment for tests: one master, one replica and three
 * sentinels (quorum 2, `down-after-milliseconds` 1000), all on free loopback
 * ports. Failovers are real: `SENTINEL FAILOVER`, or SIGKILL of the master.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Processes from "./Processes.js"
import * as RedisServer from "./RedisServer.js"
import type * as RedisTls from "./RedisTls.js"

/** The master group name the sentinels monitor. */
export const masterName = "esr-master"

/** Options of {@link start}. */
export interface StartOptions {
  /**
   * Clients reach the sentinels and the data nodes over TLS only, with these certificates: the
   * sentinels report the data nodes' TLS ports, and sentinels and replicas speak TLS to the nodes.
   * (The plain ports stay open for the harness's own inspection clients.)
   */
  readonly tls?: RedisTls.Certificates | undefined
}

/** A running Sentinel deployment. */
export interface RedisSentinel {
  /** `"127.0.0.1:PORT"` of each sentinel (its TLS port with `tls`). */
  readonly sentinels: ReadonlyArray<string>
  /** The two data nodes; which one is master changes with failovers. */
  readonly nodes: ReadonlyArray<RedisServer.RedisServer>
  /** Settings for SessionStore, merged with `extra`. */
  readonly settings: <X extends object>(extra?: X) => { sentinels: Array<string>; sentinelMaster: string } & X
  /** The current master as the sentinels report it. */
  readonly master: () => Promise<RedisServer.RedisServer>
  /** `SENTINEL FAILOVER` and waits until the sentinels report the other node as master. */
  readonly failover: () => Promise<RedisServer.RedisServer>
  /** Waits until the master has an online replica again (WAIT 1 can succeed). */
  readonly replicated: () => Promise<void>
  /**
   * `SENTINEL FAILOVER` through sentinel `via` only, and waits until that sentinel reports the other
   * node as master (the others may be frozen).
   */
  readonly failoverVia: (via: number) => Promise<void>
  /** SIGSTOPs sentinel `index`: it accepts connections and answers nothing. */
  readonly freezeSentinel: (index: number) => void
  /** SIGCONTs a frozen sentinel. */
  readonly thawSentinel: (index: number) => void
  /** SIGKILLs sentinel `index` and waits for it to exit: connections to it are reset, new ones refused. */
  readonly killSentinel: (index: number) => Promise<void>
  /** SIGKILLs the master, waits until the sentinels promote the replica, and returns the new master. */
  readonly killMaster: () => Promise<RedisServer.RedisServer>
  /** Stops every process. */
  readonly stop: () => Promise<void>
}

const tlsArgs = (tls: RedisTls.Certificates) => [
  "--tls-cert-file",
  tls.cert,
  "--tls-key-file",
  tls.key,
  "--tls-ca-cert-file",
  tls.ca,
  "--tls-auth-clients",
  "no",
  "--tls-replication",
  "yes"
]

const sentinelConf = (
  port: number,
  dir: string,
  masterPort: number,
  tls?: { port: number; files: RedisTls.Certificates }
) =>
  [
    `port ${port}`,
    "bind 127.0.0.1",
    `dir ${dir}`,
    // Sentinels talk to each other over TLS too: each announces its TLS port.
    ...(tls === undefined ? [] : [
      `tls-port ${tls.port}`,
      `tls-cert-file ${tls.files.cert}`,
      `tls-key-file ${tls.files.key}`,
      `tls-ca-cert-file ${tls.files.ca}`,
      "tls-auth-clients no",
      "tls-replication yes",
      "sentinel announce-ip 127.0.0.1",
      `sentinel announce-port ${tls.port}`
    ]),
    `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
    `sentinel down-after-milliseconds ${masterName} 1000`,
    `sentinel failover-timeout ${masterName} 4000`,
    `sentinel parallel-syncs ${masterName} 1`
  ].join("\n") + "\n"

/** Starts the deployment and waits until every sentinel sees the master and its replica. */
export const start = async (options: StartOptions = {}): Promise<RedisSentinel> => {
  const tls = options.tls
  const nodes: Array<RedisServer.RedisServer> = []
  // The port clients are told of for each node: its TLS port with `tls`.
  const announced = new Map<RedisServer.RedisServer, number>()
  const sentinels: Array<{
    readonly port: number
    readonly clientPort: number
    readonly proc: Processes.Proc
    readonly client: Redis
  }> = []
  const dir = mkdtempSync(join(tmpdir(), "esr-sentinel-"))
  const signal = (index: number, name: NodeJS.Signals) => {
    const pid = sentinels[index]?.proc.pid
    if (pid !== undefined) process.kill(pid, name)
  }
  const stop = async () => {
    for (const s of sentinels) {
      s.client.disconnect()
      await s.proc.kill()
    }
    await Promise.all(nodes.map((n) => n.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    // A node that may be demoted later announces its TLS port to the master it replicates.
    const node = async (replicaOf?: number) => {
      const tlsPort = tls === undefined ? undefined : await Processes.freePort()
      const server = await RedisServer.start({
        args: [
          // A demoted or restarted node resyncs at once, not after the default 5 s wait for more replicas.
          "--repl-diskless-sync-delay",
          "0",
          ...(tls === undefined || tlsPort === undefined
            ? []
            : ["--tls-port", String(tlsPort), "--replica-announce-port", String(tlsPort), ...tlsArgs(tls)]),
          ...(replicaOf === undefined ? [] : ["--replicaof", "127.0.0.1", String(replicaOf)])
        ]
      })
      announced.set(server, tlsPort ?? server.port)
      return server
    }
    const master = await node()
    nodes.push(master)
    nodes.push(await node(announced.get(master)))
    const probe = master.client()
    await Processes.until(
      "the replica to be in sync",
      async () => /slave0:.*state=online/.test(await probe.info("replication"))
    )
    for (let i = 0; i < 3; i++) {
      const port = await Processes.freePort()
      const tlsPort = tls === undefined ? undefined : await Processes.freePort()
      const conf = join(dir, `sentinel-${i}.conf`)
      writeFileSync(
        conf,
        sentinelConf(
          port,
          dir,
          announced.get(master)!,
          tls === undefined || tlsPort === undefined ? undefined : { port: tlsPort, files: tls }
        )
      )
      const proc = Processes.launch("redis-server", [conf, "--sentinel"])
      const client = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 1 })
      client.on("error", () => {})
      sentinels.push({ port, clientPort: tlsPort ?? port, proc, client })
    }
    await Promise.all(sentinels.map((s) =>
      Processes.until("a sentinel that knows the replica", async () => {
        const replicas = await s.client.call("SENTINEL", "REPLICAS", masterName) as Array<Array<string>>
        const others = await s.client.call("SENTINEL", "SENTINELS", masterName) as Array<unknown>
        const flags = (r: Array<string>) => r[r.indexOf("flags") + 1] ?? ""
        return replicas.some((r) => flags(r) === "slave") && others.length === 2
      })
    ))
  } catch (error) {
    await stop()
    throw error
  }

  const masterPort = async (via = 0) => {
    const [, port] = await sentinels[via]!.client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName) as [
      string,
      string
    ]
    return Number(port)
  }
  const byPort = (port: number) => nodes.find((n) => announced.get(n) === port)!
  const master = async () => byPort(await masterPort())

  // The new master is promoted, every sentinel agrees, and the old one (if alive) replicates from it.
  const promoted = async (from: number) => {
    await Promise.all(sentinels.map((s) =>
      Processes.until("the sentinels to agree on a new master", async () => {
        const [, port] = await s.client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName) as [string, string]
        return Number(port) !== from
      })
    ))
    const next = await master()
    const probe = next.client()
    await Processes.until("the new master to take writes", async () => {
      const role = await probe.role() as [string]
      return role[0] === "master"
    })
    return next
  }

  return {
    sentinels: sentinels.map((s) => `127.0.0.1:${s.clientPort}`),
    nodes,
    settings: <X extends object>(extra: X = {} as X) => ({
      sentinels: sentinels.map((s) => `127.0.0.1:${s.clientPort}`),
      sentinelMaster: masterName,
      ...extra
    }),
    master,
    replicated: async () => {
      const probe = (await master()).client()
      await Processes.until(
        "the master to have an online replica",
        async () => /slave0:.*state=online/.test(await probe.info("replication")),
        // The sentinels turn a demoted master into a replica at their next INFO (every 10 s), then it syncs.
        60_000
      )
    },
    failover: async () => {
      const from = await masterPort()
      // The replica must be in sync for a manual failover to be accepted.
      await Processes.until("the sentinel to accept SENTINEL FAILOVER", async () => {
        await sentinels[0]!.client.call("SENTINEL", "FAILOVER", masterName)
        return true
      })
      return promoted(from)
    },
    failoverVia: async (via) => {
      const from = await masterPort(via)
      await Processes.until("the sentinel to accept SENTINEL FAILOVER", async () => {
        await sentinels[via]!.client.call("SENTINEL", "FAILOVER", masterName)
        return true
      })
      await Processes.until("the sentinel to report the new master", async () => (await masterPort(via)) !== from)
    },
    freezeSentinel: (index) => signal(index, "SIGSTOP"),
    thawSentinel: (index) => signal(index, "SIGCONT"),
    killSentinel: async (index) => {
      await sentinels[index]?.proc.kill()
    },
    killMaster: async () => {
      const from = await masterPort()
      await byPort(from).kill()
      const next = await promoted(from)
      return next
    },
    stop
  }
}

/** A deployment (with `options`) for the life of a scope. */
export const scoped = (options: StartOptions = {}): Effect.Effect<RedisSentinel, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.promise(() => start(options)), (deployment) => Effect.promise(() => deployment.stop()))
