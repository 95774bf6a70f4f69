/**
 * The demo's HTML page in a real browser: Debian's chromium (installed by
 * .ci/run), driven by playwright-core, which downloads nothing. Two browser
 * contexts are two browsers of one person, each with its own cookies.
 * playwright gives every launch a fresh `--user-data-dir` of its own (and
 * refuses one in `args`), so no profile is ever shared or reused.
 *
 * `DEMO_SCREENSHOT=docs/demo-sessions.png npx vitest run test/demo.browser.test.ts`
 * also saves the page with two sessions listed.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import * as App from "../examples/app.js"
import * as SessionStore from "../src/SessionStore.js"
import * as Http from "./support/http.js"
import { RedisServer } from "./support/index.js"

const executablePath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const secret = "browser-test-secret-0123456789abcdefghijkl"

describe("demo page in chromium", () => {
  const scope = Effect.runSync(Scope.make())
  let url = ""
  let browser: Browser

  beforeAll(async () => {
    url = await Effect.runPromise(
      Effect.gen(function*() {
        const redis = yield* RedisServer.scoped()
        const store = yield* Layer.build(SessionStore.layer(redis.settings({})))
        const app = yield* App.make({ secrets: [secret] })
        return yield* Http.serve(app).pipe(Effect.provide(store))
      }).pipe(Scope.extend(scope))
    )
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  const logIn = async (page: Page, name: string, remember = false) => {
    await page.goto(url + "/")
    await page.fill("#login input[name=name]", name)
    if (remember) await page.check("#remember")
    await page.click("#login button")
    await page.waitForSelector("#user")
  }

  /** When the browser drops the session cookie, in seconds from now. */
  const cookieLifetime = async (context: BrowserContext): Promise<number> => {
    const [cookie] = (await context.cookies(url)).filter((c) => c.name === "sid")
    expect(cookie).toBeDefined()
    return cookie!.expires - Date.now() / 1000
  }

  it(
    "\"Remember me\" keeps the browser's cookie (and the session) for 30 days; without it, the store's 15 minutes",
    async () => {
      const [remembered, plain] = [await browser.newContext(), await browser.newContext()]
      try {
        const [a, b] = [await remembered.newPage(), await plain.newPage()]
        await logIn(a, "Ann", true)
        await logIn(b, "Bob")
        const long = await cookieLifetime(remembered)
        expect(long).toBeGreaterThan(29 * 86_400)
        expect(long).toBeLessThanOrEqual(30 * 86_400 + 5)
        const short = await cookieLifetime(plain)
        expect(short).toBeGreaterThan(800)
        expect(short).toBeLessThanOrEqual(905)
        // The page lists the remembered session as ending in about 30 days.
        // Its times are <time datetime="ISO">; the last one in the entry is when it expires.
        const expires = await a.getAttribute("#sessions li[data-current=true] time:last-of-type", "datetime")
        expect(Date.parse(expires ?? "")).toBeGreaterThan(Date.now() + 29 * 86_400_000)
      } finally {
        await remembered.close()
        await plain.close()
      }
    },
    60_000
  )

  it(
    "logs in from two browsers, sees two sessions, signs out everywhere else, and the other is signed out",
    async () => {
      const [home, work] = [await browser.newContext(), await browser.newContext()]
      try {
        const [a, b] = [await home.newPage(), await work.newPage()]
        await logIn(a, "Ada")
        await logIn(b, "Ada")
        expect(await b.textContent("#user")).toBe("Ada")

        await a.reload()
        const listed = a.locator("#sessions li")
        expect(await listed.count()).toBe(2)
        // What the library did: this read was a near-cache hit; the counters are shown; times read as times.
        expect(await a.getAttribute("#source", "data-source")).toBe("near-cache")
        expect(await a.textContent("#source")).toContain("near-cache: no Redis command")
        expect(Number(await a.textContent("#cache [data-stat=hits]"))).toBeGreaterThan(0)
        const times = await a.locator("#sessions time").allTextContents()
        expect(times.length).toBe(6)
        for (const time of times) expect(time).toMatch(/\((now|\d+ (s|min|h) ago|in \d+ (s|min|h))\)$/)
        // Each time stays on one line, however narrow the page.
        const box = await a.locator("#sessions time").first().boundingBox()
        expect(box!.height).toBeLessThan(30)
        expect(await a.locator("#sessions li[data-current=true]").count()).toBe(1)
        const screenshot = process.env["DEMO_SCREENSHOT"]
        if (screenshot !== undefined) await a.screenshot({ path: screenshot, fullPage: true })

        await a.click("#logout-others")
        await a.waitForURL(url + "/")
        expect(await a.locator("#sessions li").count()).toBe(1)
        expect(await a.textContent("#user")).toBe("Ada")

        await b.reload()
        expect(await b.locator("#user").count()).toBe(0)
        expect(await b.locator("#login").count()).toBe(1)
      } finally {
        await home.close()
        await work.close()
      }
    },
    60_000
  )
})
