import * as Context from "effect/Context"
import type { HttpSession } from "../HttpSession.js"

/**
 * The tag of the per-request session service. It lives here, not in the
 * public module, so that the internal modules that need it import no cycle.
 *
 * @internal
 */
export const tag: Context.Tag<HttpSession, HttpSession> = Context.GenericTag<HttpSession>(
  "effect-session-redis/HttpSession"
)
