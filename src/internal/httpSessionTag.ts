import * as Context from "effect/Context"
import type { Service } from "../HttpSession.js"

/**
 * The tag of the per-request session service. It lives here, not in the
 * public module, so that the internal modules that need it import no cycle.
 *
 * @internal
 */
export class HttpSession extends Context.Tag("effect-session-redis/HttpSession")<HttpSession, Service>() {}
