/**
 * Child process entry for the fleet workload: one app instance, with its own
 * store and connections, driven by the parent over IPC (see protocol.ts).
 * Argument: the role, "writer" or "idle"; environment: BENCH_REDIS_SERVER
 * ("host:port").
 *
 * CPU time is what the parent divides by the number of writes: each child
 * reports its own `process.cpuUsage()` delta, which other processes on the
 * machine do not take away.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as SessionConfig from "../../src/SessionConfig.js"
import * as SessionStore from "../../src/SessionStore.js"
import { makeSessionData } from "../sessionShape.js"
import type { CacheCounts, Reply, Request, Role } from "./protocol.js"

const role = process.argv[2] as Role
const server = process.env["BENCH_REDIS_SERVER"] ?? ""

interface Open {
  readonly runtime: ManagedRuntime.ManagedRuntime<SessionStore.SessionStore, unknown>
  readonly store: SessionStore.SessionStore
  readonly ids: ReadonlyArray<string>
}

let open: Open | undefined
let cpuAtStart = 0
let statsAtStart: CacheCounts | undefined

const cpuNow = () => {
  const { system, user } = process.cpuUsage()
  return user + system
}

const counts = (store: SessionStore.SessionStore): Promise<CacheCounts> =>
  Effect.runPromise(store.cacheStats).then((s) => ({
    hits: s.hits,
    misses: s.misses,
    invalidations: s.invalidations,
    size: s.size,
    mode: s.mode
  }))

const since = (start: CacheCounts | undefined, end: CacheCounts): CacheCounts => ({
  hits: end.hits - (start?.hits ?? 0),
  misses: end.misses - (start?.misses ?? 0),
  invalidations: end.invalidations - (start?.invalidations ?? 0),
  size: end.size,
  mode: end.mode
})

const opened = (): Open => {
  if (open === undefined) throw new Error("no store is open")
  return open
}

/**
 * The settings are decoded here, by the store's own Schema, from plain data: a mode the store
 * does not know fails the open with its SessionConfigError, and the parent skips that mode.
 */
const openStore = async (cache: Readonly<Record<string, unknown>>, sessions: number): Promise<void> => {
  if (open !== undefined) await close()
  const settings = { server, expire: 900, cache: { enabled: true, ...cache } }
  const layer = Layer.scoped(
    SessionStore.SessionStore,
    Effect.flatMap(SessionConfig.decode(settings), SessionStore.make)
  )
  const runtime = ManagedRuntime.make(layer)
  try {
    const store = await runtime.runPromise(SessionStore.SessionStore)
    // Each instance reads its own sessions after making them: they are cached and tracked.
    const ids = await runtime.runPromise(
      Effect.forEach(
        Array.from({ length: sessions }, (_, i) => i),
        (i) =>
          Effect.flatMap(
            store.create(makeSessionData(i)),
            (session) => Effect.as(store.retrieve(session.id), session.id)
          ),
        { concurrency: 32 }
      )
    )
    open = { runtime, store, ids }
  } catch (error) {
    await runtime.dispose()
    throw error
  }
}

const close = async () => {
  const current = open
  open = undefined
  await current?.runtime.dispose()
}

/**
 * The write phase: what a request that changes its session does to the store, `writes` times
 * over the own sessions in turn (so one session is never written twice at once): read it (a
 * cache hit) and flush one changed field.
 */
const writeAll = async (writes: number, concurrency: number): Promise<Reply> => {
  const { ids, runtime, store } = opened()
  const before = await counts(store)
  const program = Effect.forEach(
    Array.from({ length: writes }, (_, i) => ids[i % ids.length]!),
    (id) =>
      Effect.flatMap(store.retrieve(id), (found) =>
        Option.isNone(found)
          ? Effect.dieMessage(`session ${id.slice(0, 6)}… is gone`)
          : store.flush({
            ...found.value,
            data: { ...found.value.data, counter: Number(found.value.data["counter"] ?? 0) + 1 }
          })),
    { concurrency, discard: true }
  )
  const wallStart = performance.now()
  const cpuStart = cpuNow()
  await runtime.runPromise(program)
  const cpuUs = cpuNow() - cpuStart
  const wallUs = (performance.now() - wallStart) * 1000
  return { type: "wrote", cpuUs, wallUs, cache: since(before, await counts(store)) }
}

/**
 * Waits until the event loop has had nothing to do for a few milliseconds (at most 1 s). When the
 * writer's last write is acknowledged, Redis has already sent every invalidation it caused, but
 * this instance may not have read them yet: any left in its socket would keep the loop busy.
 */
const drained = async () => {
  let last = performance.eventLoopUtilization()
  for (let slice = 0; slice < 200; slice++) {
    await new Promise((resume) => setTimeout(resume, 5))
    const now = performance.eventLoopUtilization()
    const busy = performance.eventLoopUtilization(now, last).utilization
    last = now
    if (busy < 0.05) return
  }
}

const handle = async (request: Request): Promise<Reply> => {
  switch (request.type) {
    case "open":
      await openStore(request.cache, request.sessions)
      if (request.warmUpWrites > 0) await writeAll(request.warmUpWrites, 32)
      return { type: "opened" }
    case "start":
      statsAtStart = await counts(opened().store)
      cpuAtStart = cpuNow()
      return { type: "started" }
    case "stop": {
      await drained()
      const cpuUs = cpuNow() - cpuAtStart
      return { type: "stopped", cpuUs, cache: since(statsAtStart, await counts(opened().store)) }
    }
    case "write":
      return writeAll(request.writes, request.concurrency)
    case "close":
      await close()
      return { type: "closed" }
  }
}

// Requests are handled one at a time, in order: each reply answers the request before it.
let queue: Promise<void> = Promise.resolve()
process.on("message", (message) => {
  queue = queue.then(() =>
    handle(message as Request).then(
      (reply) => void process.send?.(reply),
      (error) => void process.send?.({ type: "failed", message: String(error) } satisfies Reply)
    )
  )
})
// The parent going away ends us, whatever state we are in.
process.on("disconnect", () => process.exit(0))
if (role !== "writer" && role !== "idle") throw new Error(`unknown role ${String(role)}`)
process.send?.({ type: "ready" } satisfies Reply)
