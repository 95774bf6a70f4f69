/**
 * A failed `SessionStore.open` leaves nothing running (issue 20, point 6):
 * with Redis down, refusing the password or not answering, the process that
 * tried exits by itself right after the rejection. ioredis's `disconnect()`
 * used to arm a 2 s timer even for a socket that was refused, so the process
 * lingered 2 s after every failed open.
 *
 * Not covered: Sentinel with every sentinel refusing connections. ioredis's
 * Sentinel connector probes each sentinel with a client of its own, made
 * without our options, whose disconnect arms that same 2 s timer; the store
 * cannot reach it (it does make the open fail at once instead of retrying).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { RedisServer } from "./support/index.js"
import { freePort } from "./support/Processes.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const script = join(root, "test/support/openAndExit.ts")

/** Runs the script and resolves with its output once it has exited by itself (the test's timeout bounds it). */
const openAndExit = (settings: object): Promise<ReadonlyArray<string>> =>
  new Promise((resolve, reject) => {
    execFile(join(root, "node_modules/.bin/tsx"), [script, JSON.stringify(settings)], { cwd: root }, (error, stdout) =>
      error === null ? resolve(stdout.trim().split("\n")) : reject(error))
  })

describe("a failed open", () => {
  it("leaves no timer or socket behind, whichever way it failed", async () => {
    const gone = await freePort()
    const locked = await RedisServer.start({ password: "right-password" })
    const frozen = await RedisServer.start()
    frozen.freeze()
    try {
      const cases: ReadonlyArray<readonly [object, string]> = [
        [{ server: `127.0.0.1:${gone}` }, "RedisConnectionError Refused"],
        [{ url: `redis://127.0.0.1:${gone}/0`, connectTimeout: 500 }, "RedisConnectionError Refused"],
        [{ sock: join(locked.dir, "no-such.sock") }, "RedisConnectionError Refused"],
        [{ server: locked.server }, "RedisConnectionError Authentication"],
        [{ server: locked.server, password: "wrong-password" }, "RedisConnectionError Authentication"],
        [{ server: frozen.server, connectTimeout: 300 }, "RedisConnectionError Timeout"],
        [{ cluster: [`127.0.0.1:${gone}`] }, "RedisConnectionError Cluster"]
      ]
      const outcomes = await Promise.all(cases.map(([settings]) => openAndExit(settings)))
      for (const [i, [settings, expected]] of cases.entries()) {
        expect(outcomes[i], JSON.stringify(settings)).toEqual([expected, "timers that held the process: []"])
      }
    } finally {
      frozen.thaw()
      await Promise.all([locked.stop(), frozen.stop()])
    }
  }, 60_000)
})
