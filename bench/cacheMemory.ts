/**
 * How much memory the near-cache holds per session: `npx tsx --expose-gc bench/cacheMemory.ts`.
 * One instance writes 10 000 sessions (its cache off); another reads each once, which fills its
 * near-cache; the heap after the reads minus the heap before, over the entries cached, is the cost of
 * one cached session (its entry, its id, its stored fields and its decoded, frozen data).
 */
import * as Effect from "effect/Effect"
import { SessionStore } from "../src/index.js"
import { RedisServer } from "../test/support/index.js"

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with --expose-gc")
const heap = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const count = 10_000
const shapes: ReadonlyArray<readonly [string, () => Record<string, unknown>]> = [
  ["empty", () => ({})],
  [
    "small: a user id, a cart of two, a CSRF token",
    () => ({ userId: 42, cart: ["book", "pen"], csrf: "x".repeat(43) })
  ],
  ["1 KB of JSON in one field", () => ({ blob: "y".repeat(1000) })],
  ["10 fields of 100 bytes", () => Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, "z".repeat(100)]))]
]

const redis = await RedisServer.start()
try {
  for (const [label, data] of shapes) {
    const writer = await SessionStore.open(redis.settings({ cache: { enabled: false } }))
    const reader = await SessionStore.open(redis.settings({ cache: { capacity: count } }))
    const ids: Array<string> = []
    for (let i = 0; i < count; i++) ids.push((await writer.create(data())).id)
    const before = heap()
    for (const id of ids) await reader.retrieve(id)
    const after = heap()
    const { size } = await Effect.runPromise(reader.store.cacheStats)
    const json = JSON.stringify(data()).length
    console.log(`${label} (${json} bytes of JSON): ${Math.round((after - before) / size)} bytes per cached session`)
    await Promise.all([writer.close(), reader.close()])
    await redis.client().flushall()
  }
} finally {
  await redis.stop()
}
