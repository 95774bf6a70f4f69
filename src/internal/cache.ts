/**
 * The near-cache: recently used sessions kept in memory, bounded (least
 * recently used goes first), never served past their lifetime, and filled
 * only when no invalidation or local write raced the read that fills it.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { Session } from "../Session.js"
import { metrics, type Mode, type Stats } from "../SessionCache.js"

/**
 * A cached session.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly session: Session
  /** `Option.some(session)`, made once so that a hit allocates nothing. */
  readonly found: Option.Option<Session>
  /** When the session's lifetime was last refreshed in Redis (epoch ms), as far as we know. */
  readonly refreshedAt: number
  /** When this entry stops being served. */
  readonly expiresAt: number
}

/**
 * A permit, taken before a command is sent, to install what its reply says
 * Redis holds. It is revoked by an invalidation of the same id, by a later
 * local operation on it (only the newest may fill), and by any loss of
 * tracking. Replies on one connection come back in the order sent, so the
 * newest ticket's reply reflects every earlier local write.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ticket {
  readonly id: string
  readonly token: number
  readonly epoch: number
  /** The id's partition (a Cluster slot), or -1 when the cache is not partitioned. */
  readonly partition: number
  /** The partition's epoch when the ticket was taken. */
  readonly partitionEpoch: number
}

const noTags: ReadonlyArray<never> = []

interface State {
  // A Map keeps insertion order, which makes it an O(1) LRU: a hit re-inserts its key at the end.
  // It is mutated in place, but only inside Ref.modify/update, whose callbacks run atomically.
  readonly entries: Map<string, Entry>
  readonly pending: Map<string, number>
  mode: Mode
  epoch: number
  /**
   * Per partition (Cluster slot): an epoch, bumped whenever the partition's tracking is lost or
   * moves, and whether it is tracked now. Empty when the cache is not partitioned.
   */
  readonly partitionEpochs: Uint32Array
  readonly partitionOff: Uint8Array
  nextToken: number
  hits: number
  misses: number
  invalidations: number
  received: number
  clears: number
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The most entries kept; 0 disables the cache. */
  readonly capacity: number
  /** The session lifetime in milliseconds, for sessions without one of their own. */
  readonly ttl: number
  /** In `Staleness` mode, how long an entry may be served, in milliseconds. */
  readonly maxStaleness: number
  /**
   * Splits the ids into partitions (0 to {@link partitions} − 1) whose tracking is lost and regained
   * independently (a Cluster slot, tracked through its master): see {@link SessionCache.resetPartitions}.
   * Every partition starts untracked.
   */
  readonly partitionOf?: ((id: string) => number) | undefined
}

/**
 * How many partitions a partitioned cache has: the slots of a Redis Cluster.
 *
 * @since 0.2.0
 * @category constants
 */
export const partitions = 16384

/**
 * The near-cache of one store.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionCache {
  /** The live entry for `id`, if any; marks it recently used. */
  readonly lookup: (id: string, now: number) => Effect.Effect<Entry | undefined>
  /** The live entry for `id`, if any, without counting a hit or a miss and without marking it used. */
  readonly peek: (id: string, now: number) => Effect.Effect<Entry | undefined>
  /**
   * Takes a ticket before sending a command whose reply may fill the cache. It is given back when the
   * scope closes, however the operation ends (failed, interrupted, or completed with another ticket's
   * outcome): an id nobody reads again would otherwise keep its ticket for good.
   */
  readonly begin: (id: string) => Effect.Effect<Ticket, never, Scope.Scope>
  /**
   * Installs `session` (read or written at `now`, its lifetime last refreshed at `refreshedAt`) if
   * the ticket still holds; otherwise, or when `session` is undefined, drops the id.
   */
  readonly complete: (
    ticket: Ticket,
    session: Session | undefined,
    now: number,
    refreshedAt?: number
  ) => Effect.Effect<void>
  /** Drops `id` and revokes its tickets. */
  readonly remove: (id: string) => Effect.Effect<void>
  /** Drops the ids Redis announced as changed; `null` (FLUSHDB, FLUSHALL) drops everything. */
  readonly invalidate: (ids: ReadonlyArray<string> | null) => Effect.Effect<void>
  /**
   * {@link SessionCache.invalidate} of one id, run at once: what the invalidation listener calls
   * for every key of every message, so that a message costs no Effect run and no allocation.
   */
  readonly unsafeInvalidate: (id: string) => void
  /** {@link SessionCache.invalidate} of everything (FLUSHDB, FLUSHALL), run at once. */
  readonly unsafeInvalidateAll: () => void
  /** Drops everything, revokes every ticket, and switches to `mode`. */
  readonly reset: (mode: Mode) => Effect.Effect<void>
  /**
   * Drops the entries of `partitions` only, revokes their tickets, and marks them tracked or not
   * (an untracked partition is never filled). The other partitions' entries stay.
   */
  readonly resetPartitions: (partitions: ReadonlyArray<number>, tracked: boolean) => Effect.Effect<void>
  /** The counters. */
  readonly stats: Effect.Effect<Stats>
}

/**
 * Makes an empty cache in mode `Off`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<SessionCache> =>
  Effect.map(
    Ref.make<State>({
      entries: new Map(),
      pending: new Map(),
      mode: "Off",
      epoch: 0,
      partitionEpochs: new Uint32Array(options.partitionOf === undefined ? 0 : partitions),
      partitionOff: new Uint8Array(options.partitionOf === undefined ? 0 : partitions).fill(1),
      nextToken: 0,
      hits: 0,
      misses: 0,
      invalidations: 0,
      received: 0,
      clears: 0
    }),
    (ref) => fromRef(ref, options)
  )

const fromRef = (ref: Ref.Ref<State>, options: Options): SessionCache => {
  // The state object is made once and only ever mutated in place (see State), so the listener of
  // invalidations, which runs outside any fiber, can mutate it directly: JavaScript runs it to the
  // end without interleaving, as it does Ref.modify's callbacks.
  const state = Effect.runSync(Ref.get(ref))
  // The hit path: one Ref.modify and nothing else. Metrics are updated in place for the same reason:
  // Metric.increment is an effect of its own and would cost about as much as the whole hit.
  const lookup = (id: string, now: number) =>
    Ref.modify(ref, (state): [Entry | undefined, State] => {
      const entry = state.entries.get(id)
      if (entry !== undefined) {
        state.entries.delete(id)
        if (entry.expiresAt > now && state.mode !== "Off") {
          state.entries.set(id, entry)
          state.hits++
          metrics.hits.unsafeUpdate(1, noTags)
          return [entry, state]
        }
      }
      state.misses++
      metrics.misses.unsafeUpdate(1, noTags)
      return [undefined, state]
    })

  const partitionOf = options.partitionOf
  const take = (id: string) =>
    Ref.modify(ref, (state): [Ticket, State] => {
      const partition = partitionOf === undefined ? -1 : partitionOf(id)
      const ticket = {
        id,
        token: ++state.nextToken,
        epoch: state.epoch,
        partition,
        partitionEpoch: partition < 0 ? 0 : state.partitionEpochs[partition]!
      }
      state.pending.set(id, ticket.token)
      return [ticket, state]
    })
  // Only while it is still the id's newest: a later operation's ticket stays.
  const release = (ticket: Ticket) =>
    Ref.update(ref, (state) => {
      if (state.pending.get(ticket.id) === ticket.token) state.pending.delete(ticket.id)
      return state
    })
  const begin = (id: string) => Effect.acquireRelease(take(id), release)

  const complete = (ticket: Ticket, session: Session | undefined, now: number, refreshedAt = now) =>
    Ref.update(ref, (state) => {
      const valid = state.pending.get(ticket.id) === ticket.token && state.epoch === ticket.epoch &&
        (ticket.partition < 0 ||
          (state.partitionEpochs[ticket.partition] === ticket.partitionEpoch &&
            state.partitionOff[ticket.partition] === 0))
      if (valid) state.pending.delete(ticket.id)
      if (!valid || session === undefined || state.mode === "Off" || options.capacity === 0) {
        state.entries.delete(ticket.id)
        return state
      }
      // The session's own lifetime, when it has one: an entry never outlives its session.
      const lifetime = refreshedAt + (session.snapshot?.expire ?? options.ttl)
      state.entries.delete(ticket.id)
      state.entries.set(ticket.id, {
        session,
        found: Option.some(session),
        refreshedAt,
        expiresAt: state.mode === "Staleness" ? Math.min(lifetime, now + options.maxStaleness) : lifetime
      })
      if (state.entries.size > options.capacity) {
        state.entries.delete(state.entries.keys().next().value!)
      }
      return state
    })

  const dropAll = (state: State, mode: Mode) => {
    state.entries.clear()
    state.pending.clear()
    state.mode = mode
    state.epoch++
    state.clears++
  }

  return {
    lookup,
    peek: (id, now) =>
      Effect.map(Ref.get(ref), (state) => {
        const entry = state.entries.get(id)
        return entry !== undefined && entry.expiresAt > now && state.mode !== "Off" ? entry : undefined
      }),
    begin,
    complete,
    remove: (id) =>
      Ref.update(ref, (state) => {
        state.entries.delete(id)
        state.pending.delete(id)
        return state
      }),
    unsafeInvalidate: (id) => {
      state.received++
      state.pending.delete(id)
      if (state.entries.delete(id)) {
        state.invalidations++
        metrics.invalidations.unsafeUpdate(1, noTags)
      }
    },
    unsafeInvalidateAll: () => {
      dropAll(state, state.mode)
      metrics.clears.unsafeUpdate(1, noTags)
    },
    invalidate: (ids) =>
      Effect.flatMap(
        Ref.modify(ref, (state): [number, State] => {
          if (ids === null) {
            dropAll(state, state.mode)
            return [-1, state]
          }
          let dropped = 0
          for (const id of ids) {
            if (state.entries.delete(id)) dropped++
            state.pending.delete(id)
          }
          state.invalidations += dropped
          return [dropped, state]
        }),
        (dropped) => dropped < 0 ? Metric.increment(metrics.clears) : Metric.incrementBy(metrics.invalidations, dropped)
      ),
    reset: (mode) =>
      Effect.zipRight(
        Ref.update(ref, (state) => (dropAll(state, mode), state)),
        Metric.increment(metrics.clears)
      ),
    resetPartitions: (list, tracked) =>
      Ref.update(ref, (state) => {
        if (partitionOf === undefined || list.length === 0) return state
        const hit = new Uint8Array(partitions)
        for (const partition of list) {
          hit[partition] = 1
          state.partitionEpochs[partition]++
          state.partitionOff[partition] = tracked ? 0 : 1
        }
        // Rare (a topology change): a scan is fine, and keeps the hit path free of partition checks.
        for (const id of state.entries.keys()) {
          if (hit[partitionOf(id)] === 1) state.entries.delete(id)
        }
        for (const id of state.pending.keys()) {
          if (hit[partitionOf(id)] === 1) state.pending.delete(id)
        }
        return state
      }),
    stats: Effect.map(Ref.get(ref), (state) => ({
      hits: state.hits,
      misses: state.misses,
      invalidations: state.invalidations,
      received: state.received,
      clears: state.clears,
      size: state.entries.size,
      pending: state.pending.size,
      // Partitioned: "Off" while any partition is untracked (its master's tracking is being set up).
      mode: state.partitionOff.includes(1) ? "Off" : state.mode
    }))
  }
}
