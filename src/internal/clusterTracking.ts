/**
 * Near-cache coherence on a Redis Cluster: one tracking setup per master.
 *
 * Invalidations are not shared between Cluster nodes, and REDIRECT reaches
 * only a client on the same node. So each master gets its own RESP2
 * subscriber (CLIENT ID, SUBSCRIBE `__redis__:invalidate`), and the
 * connection ioredis uses for that master sends `CLIENT TRACKING ON REDIRECT
 * <id> NOLOOP` (per-key; see `tracking.ts`): our own reads and writes of that
 * master's slots go through that very connection, so it tracks what we read
 * and NOLOOP spares our own writes.
 *
 * The cache is partitioned by slot (see `cache.ts`). A slot is tracked while
 * its master, as ioredis's slot map says, has tracking on; whenever that
 * changes (a connection of that master closes, the slot moves to another
 * master after a failover or resharding, a master is added or removed), only
 * that slot's entries and tickets are dropped, and the slot stays uncached
 * until its new master's tracking is on. The other masters' entries stay.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { Cluster, Redis as IORedis } from "ioredis"
import type { SessionConfig } from "../SessionConfig.js"
import type * as SessionCache from "./cache.js"
import * as Redact from "./redact.js"
import * as Redis from "./redis.js"
import * as RedisCluster from "./redisCluster.js"
import * as Slots from "./slots.js"
import * as Tracking from "./tracking.js"
import * as TrackingTable from "./trackingTable.js"

const channel = "__redis__:invalidate"
// Replies that mean CLIENT TRACKING is not available at all (ACL, renamed or unknown command): no retry helps.
const refused = /^(NOPERM|ERR unknown command|ERR unknown subcommand|ERR Unknown subcommand|ERR syntax)/i
const slots = Slots.count

interface Tracker {
  readonly node: IORedis
  readonly key: string
  readonly subscriber: IORedis
  /** Tracking is on for both connections as they are now. */
  tracked: boolean
  /** Its tracking table is (nearly) full: its slots are not cached (see trackingTable.ts). */
  tableFull: boolean
  /** Bumped at each new setup: a slot tracked by an earlier one may have missed invalidations. */
  generation: number
  /** Bumped when either connection closes: a setup under way must not mark the tracker tracked. */
  lifecycle: number
  subscriberId: string | undefined
  removed: boolean
  /** Setups run one at a time. */
  queue: Promise<void>
}

/**
 * Starts per-master tracking for the store's Cluster connection, and waits
 * (at most `connectTimeout`) until every slot is tracked. Where CLIENT
 * TRACKING is refused, the whole cache falls back to bounded staleness.
 *
 * @internal
 */
export const start = Effect.fnUntraced(function*(
  config: SessionConfig,
  data: Redis.Connection,
  cache: SessionCache.SessionCache
) {
  const all = Array.from({ length: slots }, (_, i) => i)
  const cluster = data.client
  if (Tracking.modeOf(config) === "off" || !(cluster instanceof Cluster)) {
    yield* cache.reset("Staleness")
    yield* cache.resetPartitions(all, true)
    return
  }
  yield* cache.reset("Tracking")
  // One listener for every master's subscriber: keys are unique across the Cluster.
  const onMessage = Tracking.listener(config.prefix, cache)
  const bound = Math.min(Duration.toMillis(config.commandTimeout) + 250, 2 ** 31 - 1)
  const subscriberOptions = RedisCluster.options(config, "effect-session-redis:invalidations").redisOptions ?? {}
  const trackers = new Map<IORedis, Tracker>()
  const secrets = Redis.secretsOf(config)
  // Per slot, who tracks it: "" for nobody, else the master and the generation of its setup.
  const slotState = new Array<string>(slots).fill("")
  let fallback = false
  let stopped = false
  let allTracked: (() => void) | undefined = undefined

  const sync = () => {
    if (stopped || fallback) return
    const masters = new Set(cluster.nodes("master"))
    for (const node of masters) if (!trackers.has(node)) add(node)
    for (const tracker of [...trackers.values()]) if (!masters.has(tracker.node)) remove(tracker)
    const byKey = new Map<string, Tracker>()
    for (const tracker of trackers.values()) byKey.set(tracker.key, tracker)
    const off: Array<number> = []
    const on: Array<number> = []
    for (let slot = 0; slot < slots; slot++) {
      const owner = cluster.slots[slot]?.[0]
      const tracker = owner === undefined ? undefined : byKey.get(owner)
      const want = tracker !== undefined && tracker.tracked && !tracker.tableFull
        ? `${owner}#${tracker.generation}`
        : ""
      if (want !== slotState[slot]) {
        slotState[slot] = want
        ;(want === "" ? off : on).push(slot)
      }
    }
    Effect.runSync(Effect.zipRight(cache.resetPartitions(off, false), cache.resetPartitions(on, true)))
    if (allTracked !== undefined && slotState.every((state) => state !== "")) allTracked()
  }

  const lost = (tracker: Tracker) => {
    tracker.lifecycle++
    if (tracker.tracked) {
      tracker.tracked = false
      sync()
    }
  }

  const setup = async (tracker: Tracker) => {
    const started = tracker.lifecycle
    const { node, subscriber } = tracker
    if (tracker.subscriberId === undefined) {
      if (subscriber.status === "wait" || subscriber.status === "end") await subscriber.connect()
      const id = await Redis.bounded(subscriber.client("ID"), bound, "CLIENT ID")
      await Redis.bounded(subscriber.subscribe(channel), bound, "SUBSCRIBE")
      tracker.subscriberId = String(id)
    }
    await Redis.bounded(node.client("TRACKING", "OFF"), bound, "CLIENT TRACKING")
    await Redis.bounded(
      node.call("CLIENT", ...Tracking.trackingArguments(config, tracker.subscriberId)),
      bound,
      "CLIENT TRACKING"
    )
    if (tracker.lifecycle !== started || tracker.removed) return
    tracker.tracked = true
    tracker.generation++
    sync()
    if (config.debug) Effect.runFork(data.debug(`tracking on ${tracker.key}`))
  }

  const enable = (tracker: Tracker, attempt = 0) => {
    tracker.queue = tracker.queue.then(() => setup(tracker)).catch((error: unknown) => {
      if (error instanceof Error && error.name === "ReplyError" && refused.test(error.message)) {
        startFallback(error)
        return
      }
      // A connection dropped (its `ready` starts over), or a transient refusal (LOADING, a subscriber
      // that reconnected under another id): try again soon, while the tracker is still wanted.
      if (stopped || fallback || tracker.removed) return
      const timer = setTimeout(() => {
        if (!tracker.tracked && !tracker.removed) enable(tracker, attempt + 1)
      }, Redis.backoffMillis(attempt))
      timer.unref()
    })
  }

  const add = (node: IORedis) => {
    const subscriber = new IORedis({
      ...subscriberOptions,
      host: node.options.host ?? "127.0.0.1",
      port: node.options.port ?? 6379,
      protocol: 2,
      autoResubscribe: false,
      lazyConnect: true,
      retryStrategy: Redis.backoffMillis
    })
    const tracker: Tracker = {
      node,
      key: Slots.keyOfNode(node),
      subscriber,
      tracked: false,
      tableFull: false,
      generation: 0,
      lifecycle: 0,
      subscriberId: undefined,
      removed: false,
      queue: Promise.resolve()
    }
    trackers.set(node, tracker)
    // Its failures show in the tracking state (the cache is switched off for its slots); the reason
    // goes to the debug log.
    subscriber.on("error", (error: unknown) => {
      if (config.debug) {
        Effect.runFork(data.debug(`invalidation subscriber error: ${Redact.error(error, secrets)?.message ?? ""}`))
      }
    })
    subscriber.on("messageBuffer", onMessage)
    subscriber.on("close", () => {
      tracker.subscriberId = undefined
      lost(tracker)
    })
    subscriber.on("ready", () => enable(tracker))
    node.on("close", onNodeClose)
    node.on("ready", onNodeReady)
    enable(tracker)
  }

  // Listeners on ioredis's own node connections, found back through the map (they outlive a tracker).
  function onNodeClose(this: IORedis) {
    const tracker = trackers.get(this)
    if (tracker !== undefined) lost(tracker)
  }
  function onNodeReady(this: IORedis) {
    const tracker = trackers.get(this)
    if (tracker !== undefined) enable(tracker)
  }

  const remove = (tracker: Tracker) => {
    tracker.removed = true
    tracker.tracked = false
    trackers.delete(tracker.node)
    tracker.node.off("close", onNodeClose)
    tracker.node.off("ready", onNodeReady)
    tracker.subscriber.disconnect()
    // A demoted master keeps tracking on for a connection ioredis may still use: switch it off.
    if (!stopped && tracker.node.status === "ready") tracker.node.client("TRACKING", "OFF").catch(() => {})
  }

  const startFallback = (error: Error) => {
    if (fallback) return
    fallback = true
    for (const tracker of [...trackers.values()]) remove(tracker)
    Effect.runSync(Effect.zipRight(cache.reset("Staleness"), cache.resetPartitions(all, true)))
    Effect.runFork(
      Effect.logWarning(
        `effect-session-redis: CLIENT TRACKING is unavailable (${error.message}); ` +
          `the near-cache serves entries for at most the configured cache.maxStaleness`
      )
    )
  }

  // Per master, Redis may forget our keys silently once its table is full (see trackingTable.ts):
  // that master's slots are then not cached until its table has room again.
  const checkTable = async (tracker: Tracker) => {
    if (tracker.node.status !== "ready") return
    const info = await Redis.bounded(tracker.node.info("stats"), bound, "INFO")
    const setting = await Redis.bounded(
      tracker.node.config("GET", "tracking-table-max-keys") as Promise<ReadonlyArray<unknown>>,
      bound,
      "CONFIG GET"
    ).catch(() => undefined)
    const table = TrackingTable.parse(info, setting)
    if (table === undefined) return
    const full = tracker.tableFull ? !TrackingTable.hasRoom(table) : TrackingTable.isFull(table)
    if (full === tracker.tableFull) return
    tracker.tableFull = full
    if (full) Effect.runFork(Effect.logWarning(`${TrackingTable.warning(table)} (node ${tracker.key})`))
    // Leaving: a new generation, so that its slots are filled again from scratch.
    else tracker.generation++
    sync()
  }
  const tableTimer = Tracking.modeOf(config) === "keys"
    ? setInterval(() => {
      for (const tracker of trackers.values()) checkTable(tracker).catch(() => undefined)
    }, TrackingTable.checkMillis)
    : undefined
  tableTimer?.unref()

  const onTopology = () => sync()
  cluster.on("refresh", onTopology)
  cluster.on("+node", onTopology)
  cluster.on("-node", onTopology)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      stopped = true
      clearInterval(tableTimer)
      cluster.off("refresh", onTopology)
      cluster.off("+node", onTopology)
      cluster.off("-node", onTopology)
      for (const tracker of [...trackers.values()]) remove(tracker)
    })
  )

  // Building the layer waits for every slot to be tracked, so the first reads are already cacheable.
  yield* Effect.async<void>((resume) => {
    allTracked = () => {
      allTracked = undefined
      resume(Effect.void)
    }
    sync()
  }).pipe(Effect.timeout(config.connectTimeout), Effect.ignore)
  allTracked = undefined
})
