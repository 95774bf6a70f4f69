/**
 * Calls each ExpressStore method with a callback that throws, and reports on
 * stdout, as JSON, what each throw became: an `uncaughtException` (what
 * express-session's MemoryStore gives, and what an app's crash handler
 * expects) or an `unhandledRejection` (what a callback inside a promise's
 * `.then` gives). The store is an in-memory one, so no Redis is needed.
 */
import session from "express-session"
import { ExpressStore } from "../../src/express.js"
import { SessionStore } from "../../src/index.js"

const outcomes: Record<string, Array<string>> = {}
process.on("uncaughtException", (error) => (outcomes[error.message] ??= []).push("uncaughtException"))
process.on("unhandledRejection", (error) => (outcomes[(error as Error).message] ??= []).push("unhandledRejection"))

const thrower = (name: string) => () => {
  throw new Error(name)
}

/** Runs `call` and waits until its callback's throw has been reported. */
const step = (name: string, call: (callback: () => never) => void) =>
  new Promise<void>((resolve) => {
    const poll = () => (outcomes[name] !== undefined ? resolve() : setImmediate(poll))
    call(thrower(name) as () => never)
    setImmediate(poll)
  })

const main = async () => {
  const store = ExpressStore.fromStore(await SessionStore.openMemory())
  const cookie = new session.Cookie()
  await step("set", (cb) => store.set("sid-1", { cookie }, cb))
  await step("get", (cb) => store.get("sid-1", cb))
  await step("touch", (cb) => store.touch("sid-1", { cookie }, cb))
  await step("all", (cb) => store.all(cb))
  await step("length", (cb) => store.length(cb))
  await step("destroy", (cb) => store.destroy("sid-1", cb))
  await step("clear", (cb) => store.clear(cb))
  process.stdout.write(`${JSON.stringify(outcomes)}\n`)
}

main()
