/**
 * The package as users get it (issue 20, Done when): `npm pack`, then, in a
 * fresh CommonJS project and a fresh ES module project, the README's install
 * commands exactly (the tarball in place of the package name; npm's cache
 * first, the registry for what it lacks), which must print no ERESOLVE or
 * EBADENGINE warning. In each project, `tsc --strict` without `skipLibCheck`
 * type-checks a file that imports every public module, and the README's
 * programs; then they run against a real redis-server: the Promise example
 * (both projects), the quick start and the HTTP example (the ES module
 * project). Plain `node` loads the built files, and the exports map refuses
 * the internals.
 */
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { RedisServer } from "./support/index.js"
import { freePort } from "./support/Processes.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const tsx = join(root, "node_modules/.bin/tsx")

/** Packs the library once (prepack builds dist/) and returns the tarball's path. */
const pack = (into: string): string => {
  const out = execFileSync("npm", ["pack", "--silent", "--pack-destination", into], { cwd: root, encoding: "utf8" })
  return join(into, out.trim().split("\n").pop()!)
}

/** The README's install commands, as argument lists, with the tarball in place of the package's name. */
const installCommands = (tarball: string): ReadonlyArray<ReadonlyArray<string>> => {
  const readme = readFileSync(join(root, "README.md"), "utf8")
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf("## Install")))![1]!
  return block.split("\n").map((line) => line.replace(/#.*$/, "").trim()).filter((line) =>
    line.startsWith("npm install")
  )
    .map((line) => line.split(/\s+/).slice(1).map((arg) => (arg === "effect-session-redis" ? tarball : arg)))
}

/** The public modules: the package's root and every `effect-session-redis/<name>` (src/ without internal/). */
const publicModules = (): ReadonlyArray<string> => [
  "effect-session-redis",
  ...readdirSync(join(root, "src")).filter((f) => f.endsWith(".ts") && f !== "index.ts").map((f) =>
    `effect-session-redis/${f.slice(0, -3)}`
  )
]

const consumer = (modules: ReadonlyArray<string>) =>
  [
    ...modules.map((m, i) => `import * as M${i} from "${m}"`),
    `import { HttpSession, type SessionConfig, SessionStore } from "effect-session-redis"`,
    `import { ExpressStore } from "effect-session-redis/express"`,
    `export const modules = [${modules.map((_, i) => `M${i}`).join(", ")}]`,
    `export const open = (settings: SessionConfig.Input) => SessionStore.open(settings)`,
    `export const middleware = HttpSession.middleware({ secrets: ["x".repeat(32)] })`,
    `export const express = ExpressStore.open`,
    ""
  ].join("\n")

const env = { npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" }

const run = (dir: string, args: ReadonlyArray<string>, extra: Record<string, string> = {}) =>
  execFileSync(args[0]!, args.slice(1), {
    cwd: dir,
    encoding: "utf8",
    env: { ...process.env, ...env, ...extra },
    stdio: ["ignore", "pipe", "pipe"]
  })

/** Runs `args` and returns everything it printed, on stdout and stderr, whatever its exit. */
const output = (dir: string, args: ReadonlyArray<string>, extra: Record<string, string> = {}) => {
  try {
    return {
      code: 0,
      text: execFileSync(args[0]!, args.slice(1), {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, ...env, ...extra },
        stdio: ["ignore", "pipe", "pipe"]
      })
    }
  } catch (error) {
    const e = error as { readonly status: number | null; readonly stdout: string; readonly stderr: string }
    return { code: e.status ?? 1, text: `${e.stdout}${e.stderr}` }
  }
}

/** A fresh project, `npm init -y` style, with the README's install commands run in it. */
const project = (base: string, name: string, type: "commonjs" | "module", tarball: string): string => {
  const dir = join(base, name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, version: "1.0.0", private: true, type }, null, 2))
  for (const args of installCommands(tarball)) {
    const { code, text } = output(dir, ["npm", "install", ...args, "--prefer-offline", "--no-audit", "--no-fund"])
    expect(code, `npm install ${args.join(" ")}:\n${text}`).toBe(0)
    expect(text, `npm install ${args.join(" ")}`).not.toMatch(/ERESOLVE|EBADENGINE|peer dep/i)
  }
  for (const example of ["promise.ts", "quickstart.ts", "http.ts"]) {
    copyFileSync(join(root, "examples", example), join(dir, example))
  }
  writeFileSync(join(dir, "consumer.ts"), consumer(publicModules()))
  writeFileSync(
    join(dir, "main.ts"),
    `import { addToCart } from "./promise${type === "module" ? ".js" : ""}"\n` +
      `addToCart({ server: process.env.SERVER! }).then((data) => console.log(JSON.stringify(data)))\n`
  )
  return dir
}

/** Polls `url` until it answers (the server is starting), for at most `ms`. */
const until = async (url: string, child: ChildProcess, ms: number): Promise<void> => {
  const deadline = Date.now() + ms
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the example exited with ${child.exitCode}`)
    // A request that arrives after the server listens but before the app serves is never answered
    // (@effect/platform-node listens first): each attempt has its own bound.
    const answered = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(() => true, () => false)
    if (answered) return
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe("the packed package", () => {
  it(
    "installs with the README's commands, type-checks strictly without skipLibCheck, and runs the README's programs",
    async () => {
      const base = mkdtempSync(join(tmpdir(), "esr-pack-"))
      const server = await RedisServer.start()
      // The quick start connects to 127.0.0.1:6379 with the password "secret": the same here, on a free port.
      const locked = await RedisServer.start({ password: "secret" })
      try {
        const tarball = pack(base)
        const expected = JSON.stringify({ userId: 42, cart: ["apple"] })
        for (const type of ["commonjs", "module"] as const) {
          const dir = project(base, `consumer-${type}`, type, tarball)
          const tsc = output(dir, [
            join(dir, "node_modules/.bin/tsc"),
            "--strict",
            "--noEmit",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2022",
            "consumer.ts",
            "promise.ts",
            "quickstart.ts",
            "http.ts",
            "main.ts"
          ])
          expect(tsc.text, `tsc in the ${type} project`).toBe("")
          expect(tsc.code).toBe(0)
          expect(run(dir, [tsx, "main.ts"], { SERVER: server.server }).trim()).toBe(expected)
          // The same with the plain runtime, no TypeScript loader: require() or import of the built files.
          const node = ["node", ...(type === "module" ? ["--input-type=module"] : [])]
          const load = type === "commonjs"
            ? `const { SessionStore } = require("effect-session-redis"); console.log(typeof SessionStore.open)`
            : `import { SessionStore } from "effect-session-redis"; console.log(typeof SessionStore.open)`
          expect(run(dir, [...node, "-e", load]).trim()).toBe("function")
          const express = type === "commonjs"
            ? `console.log(typeof require("effect-session-redis/express").ExpressStore.open)`
            : `import { ExpressStore } from "effect-session-redis/express"; console.log(typeof ExpressStore.open)`
          expect(run(dir, [...node, "-e", express]).trim()).toBe("function")
          // Internals are not part of the API: the exports map refuses them.
          const internal = type === "commonjs"
            ? `require("effect-session-redis/internal/codec.js")`
            : `await import("effect-session-redis/internal/codec.js")`
          expect(() => run(dir, [...node, "-e", internal])).toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/)
          if (type === "commonjs") continue

          // The quick start, as printed, but for the port.
          const quickstart = readFileSync(join(dir, "quickstart.ts"), "utf8")
          expect(quickstart).toContain(`server: "127.0.0.1:6379"`)
          writeFileSync(join(dir, "quickstart.ts"), quickstart.replace("127.0.0.1:6379", locked.server))
          const writes = await locked.countCommandsDuring(async () => run(dir, [tsx, "quickstart.ts"]))
          expect(writes.commands["hset"]).toBeGreaterThan(0)
          expect(writes.commands["del"]).toBe(1)

          // The HTTP example: without SESSION_SECRET it stops at once, saying why; with it, it serves.
          const unset = output(dir, [tsx, "http.ts"], { REDIS_SESSION_SERVER: server.server, PORT: "0" })
          expect(unset.code).not.toBe(0)
          expect(unset.text).toContain("Expected a secret of at least 32 characters, got an empty string")
          const port = await freePort()
          const child = spawn(tsx, ["http.ts"], {
            cwd: dir,
            env: {
              ...process.env,
              REDIS_SESSION_SERVER: server.server,
              SESSION_SECRET: "a-secret-of-at-least-32-characters-for-the-test",
              PORT: String(port)
            },
            stdio: "ignore",
            // tsx runs the program in a child process of its own: the whole group is killed at the end.
            detached: true
          })
          try {
            const url = `http://127.0.0.1:${port}/`
            await until(url, child, 60_000)
            const first = await fetch(url)
            expect(await first.json()).toEqual({ visits: 1, user: null })
            const cookie = first.headers.get("set-cookie")!.split(";")[0]!
            const second = await fetch(url, { headers: { cookie } })
            expect(await second.json()).toEqual({ visits: 2, user: null })
          } finally {
            process.kill(-child.pid!, "SIGKILL")
          }
        }
      } finally {
        await Promise.all([server.stop(), locked.stop()])
        rmSync(base, { recursive: true, force: true })
      }
    },
    600_000
  )
})
