/**
 * The README's code (issue 20, Done when): every TypeScript block is one of
 * the examples, printed unchanged, each of which the packed-package test
 * runs against a real Redis (test/package.test.ts); docs/http.md's Quick
 * start is the HTTP example too; and the install command pins the versions
 * this repository develops and tests against.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8")
const blocks = (markdown: string, lang: string) =>
  [...markdown.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!)

const programs = ["examples/quickstart.ts", "examples/promise.ts", "examples/http.ts"] as const

describe("README", () => {
  it("prints every TypeScript block exactly as an example that the tests run", () => {
    const readme = blocks(read("README.md"), "ts")
    expect(readme).toEqual(programs.map(read))
  })

  it("docs/http.md's Quick start is the HTTP example", () => {
    const quickStart = /## Quick start\n\n```ts\n([\s\S]*?)```/.exec(read("docs/http.md"))?.[1]
    expect(quickStart).toBe(read("examples/http.ts"))
  })

  it("the install command pins the Effect 3 versions this repository is developed and tested with", () => {
    const install = blocks(read("README.md").slice(read("README.md").indexOf("## Install")), "sh")[0]!
    const pkg = JSON.parse(read("package.json")) as { readonly devDependencies: Record<string, string> }
    const minor = (range: string) => /(\d+\.\d+)\.\d+/.exec(range)![1]
    expect(install).toContain(`effect@${minor(pkg.devDependencies["effect"]!)} `)
    expect(install).toContain(`@effect/platform@${minor(pkg.devDependencies["@effect/platform"]!)}\n`)
    expect(install).toContain(`@effect/platform-node@${minor(pkg.devDependencies["@effect/platform-node"]!)} `)
    expect(minor(pkg.devDependencies["effect"]!)).toBe("3.22")
  })
})
