import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { RedisServer } from "./support/index.js"

const password = "debug-password-never-printed"

describe("debug: true", () => {
  it.scopedLive("logs every Redis interaction to stderr, without the password, session ids or values", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.scoped({ password })
      const { stderr, stdout } = yield* Effect.promise(() =>
        new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
          execFile(process.execPath, ["--import", "tsx", "test/support/debugRun.ts"], {
            env: {
              ...process.env,
              REDIS_SESSION_SERVER: server.server,
              REDIS_SESSION_PASSWORD: password,
              REDIS_SESSION_DEBUG: "true"
            }
          }, (error, stdout, stderr) => error ? reject(new Error(stderr)) : resolve({ stdout, stderr }))
        )
      )
      const id = stdout.trim()
      expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/)
      // One line per command, with its outcome and duration; nothing on stdout but the id.
      expect(stderr).toMatch(/EVALSHA create session:\S+ \d+\.\d+ms ok/)
      expect(stderr).toMatch(/HGETALL session:\S+ \d+\.\d+ms ok/)
      expect(stderr).toMatch(/DEL session:\S+ \d+\.\d+ms ok/)
      expect(stderr).toMatch(/tracking on/)
      expect(stderr).not.toContain(password)
      expect(stderr).not.toContain(id)
      expect(stderr).not.toContain("value-that-must-not-be-logged")
    }).pipe(RedisServer.hangGuard(60_000, "debug run")))
})
