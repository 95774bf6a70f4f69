/**
 * A redis-server that speaks TLS, with a throwaway CA made by `openssl`: the
 * server certificate is for `localhost` and 127.0.0.1. A second, unrelated CA
 * is made too, for tests of an untrusted server.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Processes from "./Processes.js"
import * as RedisServer from "./RedisServer.js"

/** A TLS server and the files a client needs. */
export interface RedisTls {
  readonly server: RedisServer.RedisServer
  /** `"127.0.0.1:PORT"` of the TLS port. */
  readonly address: string
  /** The CA that signed the server's certificate (a path). */
  readonly ca: string
  /** A CA that signed nothing the server has (a path). */
  readonly otherCa: string
}

const ca = async (dir: string, name: string) => {
  const key = join(dir, `${name}.key`)
  const cert = join(dir, `${name}.crt`)
  await Processes.run("openssl", ["genrsa", "-out", key, "2048"])
  await Processes.run("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    key,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-out",
    cert
  ])
  return { key, cert }
}

/** The files {@link certificates} makes (paths). */
export interface Certificates {
  /** The CA that signed `cert`. */
  readonly ca: string
  /** A CA that signed nothing. */
  readonly otherCa: string
  /** A server certificate for `localhost` and 127.0.0.1, and its key. */
  readonly cert: string
  readonly key: string
}

/** Makes the two CAs and the server certificate in `dir`. */
export const certificates = async (dir: string): Promise<Certificates> => {
  const root = await ca(dir, "esr-test-ca")
  const other = await ca(dir, "esr-other-ca")
  const key = join(dir, "redis.key")
  const csr = join(dir, "redis.csr")
  const cert = join(dir, "redis.crt")
  const ext = join(dir, "ext.cnf")
  await Processes.run("sh", ["-c", `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > '${ext}'`])
  await Processes.run("openssl", ["genrsa", "-out", key, "2048"])
  await Processes.run("openssl", ["req", "-new", "-key", key, "-subj", "/CN=localhost", "-out", csr])
  await Processes.run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    root.cert,
    "-CAkey",
    root.key,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    ext,
    "-out",
    cert
  ])
  return { ca: root.cert, otherCa: other.cert, cert, key }
}

/** Makes the CAs and certificate, and starts redis-server with a plain port and a TLS port. */
export const start = async (): Promise<RedisTls & { readonly stop: () => Promise<void> }> => {
  const dir = mkdtempSync(join(tmpdir(), "esr-tls-"))
  try {
    const { ca: root, cert, key, otherCa } = await certificates(dir)
    const tlsPort = await Processes.freePort()
    const server = await RedisServer.start({
      args: [
        "--tls-port",
        String(tlsPort),
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        key,
        "--tls-ca-cert-file",
        root,
        "--tls-auth-clients",
        "no"
      ]
    })
    return {
      server,
      address: `127.0.0.1:${tlsPort}`,
      ca: root,
      otherCa,
      stop: async () => {
        await server.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}

/** A TLS server for the life of a scope. */
export const scoped: Effect.Effect<RedisTls, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(start),
  (tls) => Effect.promise(() => tls.stop())
)
