/** The four servers the HTTP workloads compare. */
export const modes = ["ours", "oursNoSession", "express", "expressNoSession"] as const

export type Mode = typeof modes[number]

export const modeLabels: Record<Mode, string> = {
  ours: "ours: @effect/platform-node + HttpSession",
  oursNoSession: "@effect/platform-node, no sessions",
  express: "express 5 + express-session + connect-redis",
  expressNoSession: "express 5, no sessions"
}
