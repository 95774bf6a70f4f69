/**
 * A focused loop over one store operation, to profile the library:
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts hit|hitRunPromise|miss|raw|flush|rawFlush|touch|rawPexpire|create
 *
 * Prints the mean time per operation. Not part of `npm run bench`.
 */
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { openStore } from "./ourStore.js"
import { startRedis } from "./redis.js"
import { makeSessionData } from "./sessionShape.js"

const what = process.argv[2] ?? "hit"
const count = Number(process.argv[3] ?? (what === "hit" ? 1_000_000 : 20_000))

const main = async () => {
  const redis = await startRedis()
  const cached = await openStore(redis.server)
  const uncached = await openStore(redis.server, { cache: false })
  const raw = new Redis({ host: redis.host, port: redis.port })
  try {
    const session = await Effect.runPromise(cached.store.create(makeSessionData()))
    const hit = cached.store.retrieve(session.id)
    const miss = uncached.store.retrieve(session.id)
    const key = `session:${session.id}`
    const ops: Record<string, () => Promise<unknown>> = {
      hit: () =>
        Effect.runPromise(Effect.gen(function*() {
          for (let i = 0; i < count; i++) yield* hit
        })),
      hitRunPromise: async () => {
        for (let i = 0; i < count; i++) await Effect.runPromise(hit)
      },
      miss: async () => {
        for (let i = 0; i < count; i++) await Effect.runPromise(miss)
      },
      raw: async () => {
        for (let i = 0; i < count; i++) {
          const fields = await raw.hgetall(key)
          for (const f in fields) if (f !== "$c") JSON.parse(fields[f]!)
        }
      },
      flush: async () => {
        for (let i = 0; i < count; i++) {
          await Effect.runPromise(cached.store.flush({ ...session, data: { ...session.data, counter: i + 1 } }))
        }
      },
      touch: async () => {
        for (let i = 0; i < count; i++) await Effect.runPromise(cached.store.touch(session.id))
      },
      rawFlush: async () => {
        for (let i = 0; i < count; i++) {
          await raw.multi().hset(key, "counter", String(i + 1)).pexpire(key, 900_000).exec()
        }
      },
      rawPexpire: async () => {
        for (let i = 0; i < count; i++) await raw.pexpire(key, 900_000)
      },
      create: async () => {
        for (let i = 0; i < count; i++) await Effect.runPromise(cached.store.create(makeSessionData(i)))
      }
    }
    const op = ops[what]
    if (op === undefined) throw new Error(`unknown operation ${what}; one of ${Object.keys(ops).join(", ")}`)
    const started = performance.now()
    const cpu = process.cpuUsage()
    await op()
    const us = ((performance.now() - started) * 1000) / count
    const used = process.cpuUsage(cpu)
    // CPU time is steadier than wall time when other processes share the cores.
    const cpuUs = (used.user + used.system) / count
    process.stdout.write(
      `${what}: ${count} ops, ${us.toFixed(3)} µs/op wall, ${cpuUs.toFixed(3)} µs/op CPU in this process\n`
    )
  } finally {
    await Promise.allSettled([cached.close(), uncached.close(), raw.quit()])
    await redis.stop()
  }
}

main().then(() => process.exit(0), (error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
