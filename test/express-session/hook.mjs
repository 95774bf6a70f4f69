// Makes express-session's own test suite (test/session.js of an express-session checkout) run with
// ExpressStore as its store. Loaded by mocha with --require (see ./run.mjs): before the test file
// loads, the checkout's MemoryStore module is replaced by a constructor that hands out an ExpressStore
// on a store of its own, so that every store the suite makes, explicitly (`new session.MemoryStore()`)
// or by default (`session()` without a store), is ours. Nothing of express-session's code is here.
//
// EXPRESS_SESSION_DIR: the checkout. EXPRESS_SESSION_BACKEND: "redis" (default: one redis-server,
// a key prefix per store) or "memory".
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { tsImport } from "tsx/esm/api"

const checkout = process.env.EXPRESS_SESSION_DIR
if (checkout === undefined) throw new Error("EXPRESS_SESSION_DIR must name an express-session checkout")
const backend = process.env.EXPRESS_SESSION_BACKEND ?? "redis"

const { ExpressStore } = await tsImport("../../src/express.ts", import.meta.url)
const { SessionStore } = await tsImport("../../src/index.ts", import.meta.url)
const { RedisServer } = await tsImport("../support/index.ts", import.meta.url)

// Stores must exist before the suite asks for one (a constructor cannot wait): as many as the suite can
// ask for, at most one per place that makes a session middleware or a store, and some to spare.
const suite = readFileSync(join(checkout, "test/session.js"), "utf8")
const wanted = (suite.match(/createServer\(|createSession\(|session\(|MemoryStore\(/g) ?? []).length + 50

const redis = backend === "redis" ? await RedisServer.start() : undefined
const pool = []
for (let i = 0; i < wanted; i += 25) {
  const batch = Array.from({ length: Math.min(25, wanted - i) }, (_, j) =>
    redis === undefined
      ? SessionStore.openMemory()
      : SessionStore.open(redis.settings({ prefix: `es${i + j}:` })))
  pool.push(...await Promise.all(batch))
}
const opened = [...pool]
let handedOut = 0

const require = createRequire(join(checkout, "index.js"))
const memoryPath = require.resolve("./session/memory")
require(memoryPath)
// `new MemoryStore()` returns the object the constructor returns: an ExpressStore on a fresh store.
function MemoryStore() {
  const store = pool.shift()
  if (store === undefined) throw new Error(`the pool of ${wanted} stores ran out`)
  handedOut++
  return ExpressStore.fromStore(store)
}
require.cache[memoryPath].exports = MemoryStore

console.log(`ExpressStore on ${backend === "redis" ? `redis-server ${redis.server}` : "the in-memory backend"}`)

export const mochaHooks = {
  async afterAll() {
    await Promise.all(opened.map((store) => store.close()))
    await redis?.stop()
    console.log(`ExpressStore: ${handedOut} stores handed out`)
  }
}
