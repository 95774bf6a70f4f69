#!/usr/bin/env node
// Runs express-session's own test suite against ExpressStore: `node test/express-session/run.mjs <checkout>`.
//
// Optional, and never part of `npm test` by itself (test/ExpressStore.expressSession.test.ts runs it
// when EXPRESS_SESSION_DIR is set, and skips otherwise). The checkout is a clone of express-session's
// repository (its npm package ships no tests), at the version this library's devDependencies use,
// with its own dependencies installed (`npm install` in it). Nothing of it is copied here.
// EXPRESS_SESSION_BACKEND=memory runs it on the in-memory backend instead of a redis-server.
//
// Prints mocha's report, then a last line `express-session suite: N passed, N failed, N pending`;
// exits 0 when the suite ran (whatever its outcome), 2 when it could not.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const checkout = resolve(process.argv[2] ?? process.env.EXPRESS_SESSION_DIR ?? "")
const mocha = join(checkout, "node_modules/mocha/bin/mocha.js")
if (!existsSync(join(checkout, "test/session.js")) || !existsSync(mocha)) {
  console.error(`not an express-session checkout with its dependencies installed: ${checkout}`)
  process.exit(2)
}
const hook = fileURLToPath(new URL("./hook.mjs", import.meta.url))
// The suite's https tests read a throwaway certificate that the checkout's own script makes.
if (!existsSync(join(checkout, "test/fixtures/server.crt"))) {
  spawnSync("sh", ["test/support/gencert.sh"], { cwd: checkout, stdio: "inherit" })
}
const run = spawnSync(
  process.execPath,
  [mocha, "--require", "test/support/env", "--require", hook, "--no-exit", "--reporter", "spec", "test/session.js"],
  {
    cwd: checkout,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, EXPRESS_SESSION_DIR: checkout }
  }
)
process.stdout.write(run.stdout ?? "")
process.stderr.write(run.stderr ?? "")
const count = (word) => Number(new RegExp(`(\\d+) ${word}`).exec(run.stdout ?? "")?.[1] ?? 0)
const passed = count("passing")
if (passed === 0 && count("failing") === 0) process.exit(2)
console.log(`express-session suite: ${passed} passed, ${count("failing")} failed, ${count("pending")} pending`)
