/** The servers the HTTP workloads compare. */
export const modes = [
  "ours",
  "oursNoSession",
  "oursFloor",
  "oursWriteFloor",
  "oursPlatformMiddleware",
  "express",
  "expressNoSession",
  "expressCsc",
  "expressOurs"
] as const

export type Mode = typeof modes[number]

export const modeLabels: Record<Mode, string> = {
  ours: "ours: @effect/platform-node + HttpSession",
  oursNoSession: "@effect/platform-node, no sessions",
  oursFloor: "@effect/platform-node, trivial middleware (floor)",
  oursWriteFloor: "trivial middleware + a raw MULTI per write (write floor)",
  oursPlatformMiddleware: "@effect/platform-node, HttpMiddleware.xForwardedHeaders",
  express: "express 5 + express-session + connect-redis",
  expressNoSession: "express 5, no sessions",
  expressCsc: "express-session + connect-redis, node-redis CSC",
  expressOurs: "express 5 + express-session + our ExpressStore"
}

/** The servers that keep sessions (they need a login first). */
export const hasSessions = (mode: Mode): boolean =>
  mode === "ours" || mode === "express" || mode === "expressCsc" || mode === "expressOurs"
