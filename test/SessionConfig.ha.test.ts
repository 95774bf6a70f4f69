/**
 * The settings of issue 11: sentinels, cluster, TLS and waitReplicas. Each
 * bad combination is an error naming the field; the env form reads lists
 * comma-separated; secrets stay redacted.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import { SessionConfig } from "../src/index.js"

const fieldOf = (input: unknown) =>
  Either.match(Either.try(() => SessionConfig.decodeSync(input)), {
    onLeft: (error) => (error as { readonly field?: string }).field,
    onRight: () => undefined
  })

describe("Sentinel, Cluster, TLS and waitReplicas settings", () => {
  it("exactly one place says where Redis is; every bad combination names its field", () => {
    expect(fieldOf({ sentinels: ["127.0.0.1:26379"], sentinelMaster: "m" })).toBeUndefined()
    expect(fieldOf({ cluster: ["127.0.0.1:7000", "127.0.0.1:7001"] })).toBeUndefined()
    expect(fieldOf({ server: "a:1", cluster: ["b:2"] })).toBe("cluster")
    expect(fieldOf({ sentinels: ["a:1"], url: "redis://b" })).toBe("sentinels")
    expect(fieldOf({})).toBe("server")
    expect(fieldOf({ sentinels: ["a:1"] })).toBe("sentinelMaster")
    expect(fieldOf({ server: "a:1", sentinelMaster: "m" })).toBe("sentinelMaster")
    expect(fieldOf({ server: "a:1", sentinelPassword: "p" })).toBe("sentinelPassword")
    expect(fieldOf({ cluster: [] })).toBe("cluster")
    expect(fieldOf({ cluster: ["a:99999"] })).toBe("cluster.0")
    expect(fieldOf({ cluster: ["a:1"], database: 2 })).toBe("database")
    expect(fieldOf({ sock: "/tmp/r.sock", tls: {} })).toBe("tls")
    expect(fieldOf({ url: "redis://a", tls: {} })).toBe("tls")
    expect(fieldOf({ url: "rediss://a", tls: { ca: "/ca.pem" } })).toBeUndefined()
    expect(fieldOf({ server: "a:1", waitReplicas: -1 })).toBe("waitReplicas")
    expect(fieldOf({ server: "a:1", waitReplicas: 1, waitTimeout: 3000, commandTimeout: 2000 })).toBe("waitTimeout")
    expect(fieldOf({ server: "a:1", tls: { bogus: true } })).toBe("tls.bogus")
  })

  it("defaults: no WAIT, a 1 s waitTimeout; secrets are redacted", () => {
    const config = SessionConfig.decodeSync({
      sentinels: ["127.0.0.1:26379"],
      sentinelMaster: "m",
      sentinelPassword: "sentinel-secret",
      tls: { key: "-----BEGIN PRIVATE KEY-----secret" }
    })
    expect(config.waitReplicas).toBe(0)
    expect(Redacted.isRedacted(config.sentinelPassword)).toBe(true)
    expect(Redacted.isRedacted(config.tls?.key)).toBe(true)
    expect(JSON.stringify(config)).not.toMatch(/sentinel-secret|PRIVATE KEY/)
    expect(String(Either.flip(Either.try(() => SessionConfig.decodeSync({ server: "a:1", sentinelPassword: 42 })))))
      .not.toMatch(/42/)
  })

  it.effect("env form: comma-separated lists and nested TLS variables", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(
        new Map([
          ["REDIS_SESSION_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379"],
          ["REDIS_SESSION_SENTINEL_MASTER", "mymaster"],
          ["REDIS_SESSION_SENTINEL_PASSWORD", "s3cret"],
          ["REDIS_SESSION_TLS_CA", "/etc/ssl/redis-ca.pem"],
          ["REDIS_SESSION_TLS_SERVERNAME", "redis.internal"],
          ["REDIS_SESSION_WAIT_REPLICAS", "1"],
          ["REDIS_SESSION_WAIT_TIMEOUT", "500"]
        ]),
        { pathDelim: "_" }
      )
      const config = yield* Effect.withConfigProvider(SessionConfig.config, provider)
      expect(config.sentinels).toEqual([{ host: "10.0.0.1", port: 26379 }, { host: "10.0.0.2", port: 26379 }])
      expect(config.sentinelMaster).toBe("mymaster")
      expect(config.tls).toMatchObject({ enabled: true, ca: "/etc/ssl/redis-ca.pem", servername: "redis.internal" })
      expect(config.waitReplicas).toBe(1)
      const cluster = yield* Effect.withConfigProvider(
        SessionConfig.config,
        ConfigProvider.fromMap(new Map([["REDIS_SESSION_CLUSTER", "n1:7000,n2:7000,n3:7000"]]), { pathDelim: "_" })
      )
      expect(cluster.cluster?.length).toBe(3)
    }))
})
