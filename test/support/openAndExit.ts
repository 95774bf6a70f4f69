/**
 * Opens a store with the settings given as JSON in argv[2], expecting the
 * open to fail, and prints on stdout the error's tag and reason, then, when
 * the process is about to exit by itself, the delays of the timers that fired
 * after the rejection: each of them held the process that long (a timer of
 * 0 ms, which only defers a step, is not counted). The test waits for the exit.
 */
import { SessionStore } from "../../src/index.js"

// Every timer from here on (ioredis calls the global setTimeout): its delay, once it fires after the rejection.
let rejected = false
const held: Array<number> = []
const { setTimeout: set } = globalThis
globalThis.setTimeout = Object.assign(
  (callback: (...args: Array<unknown>) => void, ms?: number, ...args: Array<unknown>) => {
    const timer = set(() => {
      if (rejected && timer.hasRef() && (ms ?? 0) > 0) held.push(ms ?? 0)
      callback(...args)
    }, ms)
    return timer
  },
  { __promisify__: set.__promisify__ }
) as typeof globalThis.setTimeout

SessionStore.open(JSON.parse(process.argv[2]!)).then(
  (store) => {
    process.stdout.write("opened\n")
    return store.close()
  },
  (error: { readonly _tag?: string; readonly reason?: string }) => {
    rejected = true
    process.stdout.write(`${error._tag} ${error.reason ?? ""}\n`)
    process.once("beforeExit", () => process.stdout.write(`timers that held the process: ${JSON.stringify(held)}\n`))
  }
)
