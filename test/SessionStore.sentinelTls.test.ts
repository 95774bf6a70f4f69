/**
 * TLS behind Redis Sentinel (issue 11): sentinels and data nodes that the
 * store reaches over TLS only (the sentinels report the nodes' TLS ports, and
 * talk TLS to them and to each other). The store finds the master through
 * the sentinels with `tls.ca`, a second instance's near-cache stays coherent,
 * a SENTINEL FAILOVER is followed over TLS, and neither a plain client nor an
 * untrusted CA gets through: both fail the build with a typed error.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RedisServer } from "./support/index.js"
import * as RedisSentinel from "./support/RedisSentinel.js"
import * as RedisTls from "./support/RedisTls.js"
import { instance, setField, untilSeen } from "./support/Stores.js"

/** Throwaway certificates for the life of a scope. */
const certificates = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "esr-sentinel-tls-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.flatMap((dir) => Effect.promise(() => RedisTls.certificates(dir))))

describe("TLS behind Redis Sentinel", () => {
  it.scopedLive(
    "finds the master through TLS sentinels, stays coherent, follows a failover, and refuses plain and untrusted clients",
    () =>
      Effect.gen(function*() {
        const certs = yield* certificates
        const deployment = yield* RedisSentinel.scoped({ tls: certs })
        // The sentinels report the nodes' TLS ports (the harness finds nodes by them), so every
        // connection of the store, data and subscriber alike, is a TLS one.
        const settings = deployment.settings({ tls: { ca: certs.ca } })
        const a = yield* instance(settings)
        const b = yield* instance(settings)
        expect((yield* a.cacheStats).mode).toBe("Tracking")

        // b caches the session, a changes it, and b serves the new value: invalidations arrive over TLS.
        const session = yield* a.create({ v: "start" })
        yield* untilSeen(b, session.id, "start")
        yield* setField(a, session.id, "over-tls")
        yield* untilSeen(b, session.id, "over-tls")

        // The failover is followed over TLS too, and b keeps tracking the new master.
        yield* Effect.promise(() => deployment.failover())
        yield* RedisServer.eventually(setField(a, session.id, "after-failover"), { timeoutMs: 20_000, intervalMs: 20 })
        yield* untilSeen(b, session.id, "after-failover")
        yield* untilSeen(a, session.id, "after-failover")

        // Without TLS nothing answers on those ports; with a CA that signed nothing there, no handshake succeeds.
        const plain = yield* Effect.flip(Effect.scoped(instance(deployment.settings({ connectTimeout: 2000 }))))
        expect(plain._tag).toBe("RedisConnectionError")
        const untrusted = yield* Effect.flip(
          Effect.scoped(instance(deployment.settings({ tls: { ca: certs.otherCa }, connectTimeout: 2000 })))
        )
        // Reason Closed, not Tls: ioredis drops its sentinel connections' errors (docs/deployment.md), so
        // all the store learns is that they closed. It fails at once: no retry rounds before a first connection.
        expect(untrusted._tag === "RedisConnectionError" && untrusted.reason).toBe("Closed")
        expect(untrusted.message).toMatch(/All sentinels are unreachable/)
        yield* Effect.log(
          `sentinel over TLS: a plain client fails with ${plain.message}; an untrusted CA with ${untrusted.message}`
        )
      }).pipe(RedisServer.hangGuard(90_000, "sentinel over tls")),
    { timeout: 90_000 }
  )
})
