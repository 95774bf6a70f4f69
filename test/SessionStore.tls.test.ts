/**
 * TLS for real (issue 11): a redis-server with a TLS port and a throwaway CA.
 * The store connects with `tls.ca` (a path or PEM text), and a server whose
 * certificate the given CA did not sign fails with a typed `Tls` error.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { readFileSync } from "node:fs"
import { RedisServer } from "./support/index.js"
import * as RedisTls from "./support/RedisTls.js"
import { instance } from "./support/Stores.js"

describe("TLS", () => {
  it.scopedLive("connects over TLS with a CA file or PEM text, keeps the cache coherent, and rejects an untrusted server with reason Tls", () =>
    Effect.gen(function*() {
      const tls = yield* RedisTls.scoped
      const a = yield* instance({ server: tls.address, tls: { ca: tls.ca, servername: "localhost" } })
      const b = yield* instance({ server: tls.address, tls: { ca: readFileSync(tls.ca, "utf8") } })
      const created = yield* a.create({ v: 1 })
      yield* b.retrieve(created.id)
      expect((yield* b.cacheStats).mode).toBe("Tracking")
      yield* a.flush({ ...created, data: { v: 2 } })
      yield* RedisServer.eventually(
        Effect.flatMap(
          b.retrieve(created.id),
          (found) => Option.exists(found, (s) => s.data.v === 2) ? Effect.void : Effect.fail("stale")
        )
      )
      // The TLS port really is TLS: the session is visible on the plain port of the same server.
      expect(yield* Effect.promise(() => tls.server.client().exists(`session:${created.id}`))).toBe(1)

      const untrusted = yield* Effect.flip(
        Effect.scoped(instance({ server: tls.address, tls: { ca: tls.otherCa }, connectTimeout: 2000 }))
      )
      expect(untrusted._tag).toBe("RedisConnectionError")
      expect(untrusted._tag === "RedisConnectionError" && untrusted.reason).toBe("Tls")
      expect(untrusted.message).toMatch(/certificate/i)

      const missing = yield* Effect.flip(
        Effect.scoped(instance({ server: tls.address, tls: { ca: "/nonexistent/ca.pem" } }))
      )
      expect(missing._tag === "SessionConfigError" && missing.field).toBe("tls.ca")
    }).pipe(RedisServer.hangGuard(60_000, "tls")))
})
