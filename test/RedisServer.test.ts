import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { RedisServer } from "./support/index.js"

describe("RedisServer (test support)", () => {
  it("starts on a free TCP port and answers PING", async () => {
    const server = await RedisServer.start()
    try {
      expect(server.port).toBeGreaterThan(0)
      expect(server.port).not.toBe(6379)
      expect(server.server).toBe(`127.0.0.1:${server.port}`)
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`)
      expect(server.settings({ database: 2 })).toEqual({ server: server.server, database: 2 })
      expect(await server.client().ping()).toBe("PONG")
      // No persistence.
      const client = server.client()
      expect(await client.config("GET", "save")).toEqual(["save", ""])
      expect(await client.config("GET", "appendonly")).toEqual(["appendonly", "no"])
    } finally {
      await server.stop()
    }
  })

  it("starts on a unix socket under a temp dir", async () => {
    const server = await RedisServer.start({ unixSocket: true })
    try {
      expect(server.socket).toBeDefined()
      expect(server.socket!.startsWith(server.dir)).toBe(true)
      expect(existsSync(server.socket!)).toBe(true)
      expect(server.settings()).toEqual({ sock: server.socket })
      expect(await server.client().ping()).toBe("PONG")
    } finally {
      await server.stop()
    }
  })

  it("requires the password when asked", async () => {
    const server = await RedisServer.start({ password: "s3cret p@ss" })
    try {
      expect(server.url).toBe(`redis://:${encodeURIComponent("s3cret p@ss")}@127.0.0.1:${server.port}`)
      expect(server.settings()).toEqual({ server: server.server, password: "s3cret p@ss" })
      expect(await server.client().ping()).toBe("PONG")
      const anonymous = server.client({ password: undefined, lazyConnect: true, retryStrategy: () => null })
      await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/)
    } finally {
      await server.stop()
    }
  })

  it("passes extra arguments", async () => {
    const server = await RedisServer.start({ args: ["--enable-debug-command", "yes"] })
    try {
      expect(await server.client().call("DEBUG", "SLEEP", "0")).toBe("OK")
    } finally {
      await server.stop()
    }
  })

  it("kills and restarts on the same port", async () => {
    const server = await RedisServer.start()
    try {
      const client = server.client()
      await client.set("k", "v")
      const pid = server.pid()
      await server.kill()
      expect(server.pid()).toBe(pid)
      await expect(server.client({ lazyConnect: true, retryStrategy: () => null }).ping()).rejects.toThrow()
      await server.restart()
      expect(server.pid()).not.toBe(pid)
      // A new process without persistence: the data is gone, the address is the same.
      const fresh = server.client()
      expect(await fresh.ping()).toBe("PONG")
      expect(await fresh.get("k")).toBeNull()
    } finally {
      await server.stop()
    }
  })

  it("freezes and thaws: a frozen server accepts but does not answer", async () => {
    const server = await RedisServer.start()
    try {
      const client = server.client({ commandTimeout: 200 })
      await client.ping()
      server.freeze()
      await expect(client.ping()).rejects.toThrow(/timed out/i)
      server.thaw()
      expect(await server.client().ping()).toBe("PONG")
    } finally {
      await server.stop()
    }
  })

  it("connectionsWithUnreadInput sees a command waiting at a frozen server", async () => {
    const server = await RedisServer.start()
    try {
      const client = server.client()
      await client.ping()
      expect(server.connectionsWithUnreadInput()).toBe(0)
      server.freeze()
      const pong = client.ping()
      while (server.connectionsWithUnreadInput() === 0) await new Promise((r) => setTimeout(r, 1))
      expect(server.connectionsWithUnreadInput()).toBe(1)
      server.thaw()
      expect(await pong).toBe("PONG")
    } finally {
      await server.stop()
    }
  })

  it("stop kills a frozen server", async () => {
    const server = await RedisServer.start()
    server.freeze()
    await server.stop()
    expect(existsSync(server.dir)).toBe(false)
  })

  it("restarts a unix socket server on the same socket", async () => {
    const server = await RedisServer.start({ unixSocket: true, password: "pw" })
    try {
      await server.kill()
      await server.restart()
      expect(await server.client().ping()).toBe("PONG")
    } finally {
      await server.stop()
    }
  })

  it("stop kills the process, removes the temp dir and is idempotent", async () => {
    const server = await RedisServer.start({ unixSocket: true })
    const pid = server.pid()!
    expect(existsSync(server.dir)).toBe(true)
    await server.stop()
    expect(existsSync(server.dir)).toBe(false)
    expect(() => process.kill(pid, 0)).toThrow()
    await server.stop()
  })

  it("a server does not outlive a test process that is SIGKILLed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "esr-orphan-test-"))
    try {
      const script = join(dir, "orphan.mts")
      const support = pathToFileURL(join(import.meta.dirname, "support", "RedisServer.ts")).href
      writeFileSync(
        script,
        `import { start } from ${JSON.stringify(support)}\n` +
          `const server = await start()\n` +
          `console.log(JSON.stringify({ port: server.port, dir: server.dir }))\n` +
          `setInterval(() => {}, 1000)\n`
      )
      const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["ignore", "pipe", "inherit"] })
      const line = await new Promise<string>((resolve, reject) => {
        let out = ""
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString()
          if (out.includes("\n")) resolve(out.split("\n")[0]!)
        })
        child.once("exit", (code) => reject(new Error(`orphan script exited early (${code})`)))
      })
      const { dir: serverDir, port } = JSON.parse(line) as { port: number; dir: string }
      expect(existsSync(serverDir)).toBe(true)
      child.kill("SIGKILL")
      // Poll (bounded by the test timeout) until the watchdog has killed the server and removed its dir.
      const refused = () =>
        new Promise<boolean>((resolve) => {
          const socket = net.createConnection({ port, host: "127.0.0.1" })
          socket.once("connect", () => (socket.destroy(), resolve(false)))
          socket.once("error", () => resolve(true))
        })
      while (existsSync(serverDir) || !(await refused())) {
        await new Promise((r) => setTimeout(r, 20))
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("fails clearly when redis-server cannot start", async () => {
    await expect(RedisServer.start({ args: ["--no-such-option", "1"] })).rejects.toThrow(
      /exited before it was ready[\s\S]*no-such-option/i
    )
  })

  it("counts the commands run during a function, without INFO and CONFIG", async () => {
    const server = await RedisServer.start()
    try {
      const client = server.client()
      await client.ping()
      const { commands, total, value } = await server.countCommandsDuring(async () => {
        await client.set("a", "1")
        await client.get("a")
        await client.get("a")
        return "done"
      })
      expect(value).toBe("done")
      expect(commands).toEqual({ set: 1, get: 2 })
      expect(total).toBe(3)
      expect(await server.commandStats()).toEqual({ set: 1, get: 2 })
    } finally {
      await server.stop()
    }
  })

  it.scoped("scoped stops the server when the scope closes", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* RedisServer.scoped()
        const client = server.client()
        yield* Effect.promise(() => client.ping())
        const counted = yield* server.countCommands(Effect.promise(() => client.ping()))
        expect(counted.value).toBe("PONG")
        expect(counted.commands).toEqual({ ping: 1 })
        return server.dir
      }))
      expect(existsSync(dir)).toBe(false)
    }))

  it.live("eventually polls until success and hangGuard fails a hang", () =>
    Effect.gen(function*() {
      let n = 0
      const value = yield* RedisServer.eventually(Effect.suspend(() => ++n < 3 ? Effect.fail("no") : Effect.succeed(n)))
      expect(value).toBe(3)
      const exit = yield* Effect.exit(Effect.never.pipe(RedisServer.hangGuard(50, "never")))
      expect(exit._tag).toBe("Failure")
    }))
})
