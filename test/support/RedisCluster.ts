/**
 * A real Redis Cluster for tests: three masters and three replicas
 * (`cluster-node-timeout` 1000) on free loopback ports, each in its own temp
 * dir. Failovers are real: `CLUSTER FAILOVER` on a replica, or SIGKILL of a
 * master.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import * as Processes from "./Processes.js"
import * as RedisServer from "./RedisServer.js"

/** A running cluster. */
export interface RedisCluster {
  /** Every node; which ones are masters changes with failovers. */
  readonly nodes: ReadonlyArray<RedisServer.RedisServer>
  /** Settings for SessionStore (`cluster` seeds), merged with `extra`. */
  readonly settings: <X extends object>(extra?: X) => { cluster: Array<string> } & X
  /** The master that serves `key` now, as the cluster reports it. */
  readonly masterOf: (key: string) => Promise<RedisServer.RedisServer>
  /** The masters now. */
  readonly masters: () => Promise<ReadonlyArray<RedisServer.RedisServer>>
  /** `CLUSTER FAILOVER` on the replica of `master`; waits until it serves the slots, and returns it. */
  readonly failover: (master: RedisServer.RedisServer) => Promise<RedisServer.RedisServer>
  /** SIGKILLs `master`, waits until its replica serves the slots, and returns the replica. */
  readonly killMaster: (master: RedisServer.RedisServer) => Promise<RedisServer.RedisServer>
  /** Restarts a killed node and waits until it is back in the cluster as the online replica of `master`. */
  readonly restart: (node: RedisServer.RedisServer, master: RedisServer.RedisServer) => Promise<void>
  /** Stops every node. */
  readonly stop: () => Promise<void>
}

// Nodes this harness killed (a killed RedisServer still reports its old pid).
const killed = new WeakSet<RedisServer.RedisServer>()
const alive = (node: RedisServer.RedisServer) => !killed.has(node)

// One inspection client per node (closed by the node's stop), not one per poll.
const probes = new WeakMap<RedisServer.RedisServer, Redis>()
const probe = (node: RedisServer.RedisServer): Redis => {
  let client = probes.get(node)
  if (client === undefined) probes.set(node, client = node.client())
  return client
}

/** The node port that serves `slot`, as `node` sees the cluster. */
const ownerPort = async (node: RedisServer.RedisServer, slot: number): Promise<number | undefined> => {
  const ranges = await probe(node).call("CLUSTER", "SLOTS") as Array<[number, number, [string, number]]>
  return ranges.find(([from, to]) => from <= slot && slot <= to)?.[2][1]
}

/** The port of the online replica of `master`, from its INFO replication. */
const replicaPort = async (master: RedisServer.RedisServer): Promise<number | undefined> => {
  const info = await probe(master).info("replication")
  const port = /slave0:ip=[^,]+,port=(\d+),state=online/.exec(info)?.[1]
  return port === undefined ? undefined : Number(port)
}

/** Options of {@link start}, for clusters that are more than plain TCP (TLS). */
export interface StartOptions {
  /** Extra `redis-server` arguments of the `index`th node (so that each can get its own ports). */
  readonly args?: ((index: number) => ReadonlyArray<string>) | undefined
  /** Extra `redis-cli` arguments for `--cluster create`, e.g. `["--tls", "--cacert", ca]`. */
  readonly cliArgs?: ReadonlyArray<string> | undefined
  /** Where clients reach the `index`th node (default its plain `server`); used for `create` and the seeds. */
  readonly address?: ((node: RedisServer.RedisServer, index: number) => string) | undefined
}

/** Starts the nodes, creates the cluster and waits until every node reports it ok and in sync. */
export const start = async (options: StartOptions = {}): Promise<RedisCluster> => {
  const nodes: Array<RedisServer.RedisServer> = []
  const addressOf = (node: RedisServer.RedisServer, index: number) => options.address?.(node, index) ?? node.server
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  }
  const byPort = (port: number) => nodes.find((n) => n.port === port)
  const live = () => nodes.filter(alive)
  const masters = async () => {
    const out: Array<RedisServer.RedisServer> = []
    for (const node of live()) {
      const role = await probe(node).role() as [string]
      if (role[0] === "master") out.push(node)
    }
    return out
  }
  // Every live node agrees that `port` serves `slot`, and reports the cluster ok.
  const settled = (slot: number, port: number) =>
    Processes.until("every node to agree on the new master", async () => {
      for (const node of live()) {
        if (!/cluster_state:ok/.test(await probe(node).call("CLUSTER", "INFO") as string)) return false
        if (await ownerPort(node, slot) !== port) return false
      }
      return true
    }, 30_000)
  const firstSlotOf = async (master: RedisServer.RedisServer) => {
    const ranges = await probe(master).call("CLUSTER", "SLOTS") as Array<[number, number, [string, number]]>
    return ranges.find(([, , [, port]]) => port === master.port)![0]
  }

  try {
    for (let i = 0; i < 6; i++) {
      nodes.push(
        await RedisServer.start({
          args: [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "1000",
            "--cluster-config-file",
            "nodes.conf",
            // A replica resyncs at once, not after the default 5 s wait for more replicas.
            "--repl-diskless-sync-delay",
            "0",
            ...(options.args?.(i) ?? [])
          ]
        })
      )
    }
    await Processes.run("redis-cli", [
      ...(options.cliArgs ?? []),
      "--cluster",
      "create",
      ...nodes.map(addressOf),
      "--cluster-replicas",
      "1",
      "--cluster-yes"
    ])
    await Processes.until("every node to report cluster_state:ok", async () => {
      for (const node of nodes) {
        if (!/cluster_state:ok/.test(await probe(node).call("CLUSTER", "INFO") as string)) return false
      }
      return true
    })
    await Processes.until("every master to have an online replica", async () => {
      const found = await masters()
      if (found.length !== 3) return false
      for (const master of found) if (await replicaPort(master) === undefined) return false
      return true
    })
  } catch (error) {
    await stop()
    throw error
  }

  return {
    nodes,
    settings: <X extends object>(extra: X = {} as X) => ({ cluster: nodes.slice(0, 3).map(addressOf), ...extra }),
    masters,
    masterOf: async (key) => {
      const first = live()[0]!
      const slot = await probe(first).call("CLUSTER", "KEYSLOT", key) as number
      return byPort((await ownerPort(first, slot))!)!
    },
    failover: async (master) => {
      const slot = await firstSlotOf(master)
      let replica: RedisServer.RedisServer | undefined
      await Processes.until("the replica to be online", async () => {
        const port = await replicaPort(master)
        replica = port === undefined ? undefined : byPort(port)
        return replica !== undefined
      })
      await probe(replica!).call("CLUSTER", "FAILOVER")
      await settled(slot, replica!.port)
      return replica!
    },
    killMaster: async (master) => {
      const slot = await firstSlotOf(master)
      const replica = byPort((await replicaPort(master))!)!
      killed.add(master)
      await master.kill()
      await settled(slot, replica.port)
      return replica
    },
    restart: async (node, master) => {
      await node.restart()
      killed.delete(node)
      await Processes.until(
        "the restarted node to be an online replica",
        async () => await replicaPort(master) === node.port,
        30_000
      )
    },
    stop
  }
}

/** A cluster for the life of a scope. */
export const scoped: Effect.Effect<RedisCluster, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => start()),
  (cluster) => Effect.promise(() => cluster.stop())
)
