/**
 * The one session shape every workload uses: 20 fields, about 1 KB of JSON,
 * the kind of thing a web app keeps (user, roles, CSRF token, cart, flash).
 */
export const makeSessionData = (seed = 0): Record<string, unknown> => ({
  userId: 100_000 + seed,
  userName: `user-${seed}`,
  email: `user-${seed}@example.com`,
  displayName: "Ada Lovelace-Byron",
  roles: ["reader", "writer", "reviewer"],
  csrfToken: "t5Fq0wX2dJr8Lk1NvB7cZ3eYhG9sPaM4uQ6iW0oEx7Rb2Nc8Vd1Tf5Gh3Jk9Lm0Pq",
  locale: "en-GB",
  timezone: "Europe/London",
  theme: { mode: "dark", accent: "#3b82f6", density: "compact" },
  cart: [
    { sku: "BK-1024", qty: 1, price: 19.99 },
    { sku: "PN-0042", qty: 3, price: 2.5 },
    { sku: "NB-7781", qty: 2, price: 7.25 }
  ],
  flash: { kind: "info", text: "Your order #88231 has shipped and should arrive within three working days." },
  lastSeen: 1_700_000_000_000 + seed,
  loginAt: 1_700_000_000_000,
  visits: 42,
  returnTo: "/account/orders?page=2&sort=desc",
  features: { beta: true, newCheckout: false, searchV2: true },
  recentlyViewed: [
    "BK-1024",
    "PN-0042",
    "NB-7781",
    "MG-3310",
    "HD-9001",
    "TS-5512",
    "CB-0007",
    "LM-8080",
    "QR-2718",
    "ZX-3141"
  ],
  ip: "203.0.113.42",
  userAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
  counter: 0
})

export const fieldCount = Object.keys(makeSessionData()).length

export const jsonBytes = Buffer.byteLength(JSON.stringify(makeSessionData()))
