/**
 * The package as users get it: `npm pack`, unpacked into a throwaway
 * CommonJS project and a throwaway ES module project, each running the
 * README's Promise example (examples/promise.ts) against a real redis-server.
 * The projects see the library's dependencies through symlinks to this
 * checkout's node_modules, so nothing is downloaded.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { RedisServer } from "./support/index.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const tsx = join(root, "node_modules/.bin/tsx")

/** Packs the library once (prepack builds dist/) and returns the tarball's path. */
const pack = (into: string): string => {
  const out = execFileSync("npm", ["pack", "--silent", "--pack-destination", into], { cwd: root, encoding: "utf8" })
  return join(into, out.trim().split("\n").pop()!)
}

/** A project whose node_modules holds the unpacked tarball and links to everything else. */
const project = (base: string, name: string, type: "commonjs" | "module", tarball: string): string => {
  const dir = join(base, name)
  const modules = join(dir, "node_modules")
  mkdirSync(join(modules, "effect-session-redis"), { recursive: true })
  execFileSync("tar", ["-xzf", tarball, "-C", join(modules, "effect-session-redis"), "--strip-components=1"])
  for (const entry of readdirSync(join(root, "node_modules"))) {
    if (entry === ".bin" || entry === "effect-session-redis" || entry.startsWith(".")) continue
    symlinkSync(join(root, "node_modules", entry), join(modules, entry))
  }
  // What `npm init -y` writes, with the module system under test.
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, version: "1.0.0", type }, null, 2))
  copyFileSync(join(root, "examples/promise.ts"), join(dir, "example.ts"))
  writeFileSync(
    join(dir, "main.ts"),
    `import { addToCart } from "./example${type === "module" ? ".js" : ""}"\n` +
      `addToCart({ server: process.env.SERVER! }).then((data) => console.log(JSON.stringify(data)))\n`
  )
  return dir
}

const run = (dir: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  execFileSync(args[0]!, args.slice(1), {
    cwd: dir,
    encoding: "utf8",
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })

describe("the packed package", () => {
  it("runs the README's Promise example from CommonJS and from ES modules, and hides its internals", async () => {
    const base = mkdtempSync(join(tmpdir(), "esr-pack-"))
    const server = await RedisServer.start()
    try {
      const tarball = pack(base)
      const expected = JSON.stringify({ userId: 42, cart: ["apple"] })
      for (const type of ["commonjs", "module"] as const) {
        const dir = project(base, `consumer-${type}`, type, tarball)
        expect(run(dir, [tsx, "main.ts"], { SERVER: server.server }).trim()).toBe(expected)
        // The same with the plain runtime, no TypeScript loader: require() or import of the built files.
        const load = type === "commonjs"
          ? `const { SessionStore } = require("effect-session-redis"); console.log(typeof SessionStore.open)`
          : `import { SessionStore } from "effect-session-redis"; console.log(typeof SessionStore.open)`
        expect(run(dir, ["node", ...(type === "module" ? ["--input-type=module"] : []), "-e", load]).trim())
          .toBe("function")
        const express = type === "commonjs"
          ? `console.log(typeof require("effect-session-redis/express").ExpressStore.open)`
          : `import { ExpressStore } from "effect-session-redis/express"; console.log(typeof ExpressStore.open)`
        expect(run(dir, ["node", ...(type === "module" ? ["--input-type=module"] : []), "-e", express]).trim())
          .toBe("function")
        // Internals are not part of the API: the exports map refuses them.
        const internal = type === "commonjs"
          ? `require("effect-session-redis/internal/codec.js")`
          : `await import("effect-session-redis/internal/codec.js")`
        expect(() => run(dir, ["node", ...(type === "module" ? ["--input-type=module"] : []), "-e", internal], {}))
          .toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/)
      }
    } finally {
      await server.stop()
      rmSync(base, { recursive: true, force: true })
    }
  }, 180_000)
})
