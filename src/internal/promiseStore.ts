import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type { Async } from "../SessionStore.js"
import { SessionStore } from "../SessionStore.js"

/**
 * Runs `effect` and settles like an ordinary async function: the value, or a
 * rejection with the typed error itself (not a FiberFailure wrapping it), so
 * that `catch (e) { if (e instanceof RedisConnectionError) ... }` works.
 */
const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromiseExit(effect).then((exit) =>
    Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause))
  )

/**
 * Builds `layer` once, in a scope of its own, and hands out its store with
 * Promise-returning operations; `close` closes the scope (QUIT for Redis).
 *
 * @internal
 */
export const open = async <E>(layer: Layer.Layer<SessionStore, E>): Promise<Async> => {
  const scope = Effect.runSync(Scope.make())
  const built = await Effect.runPromiseExit(Layer.buildWithScope(layer, scope))
  if (Exit.isFailure(built)) {
    await Effect.runPromise(Scope.close(scope, built))
    throw Cause.squash(built.cause)
  }
  const store = Context.get(built.value, SessionStore)
  let closing: Promise<void> | undefined
  return {
    backend: store.backend,
    create: (data, options) => run(store.create(data, options)),
    retrieve: (id) => run(Effect.map(store.retrieve(id), Option.getOrUndefined)),
    flush: (session) => run(store.flush(session)),
    destroy: (id) => run(store.destroy(id)),
    regenerate: (session, options) => run(Effect.map(store.regenerate(session, options), Option.getOrUndefined)),
    touch: (id) => run(store.touch(id)),
    sessionsOf: (user) => run(store.sessionsOf(user)),
    destroyAll: (user, options) => run(store.destroyAll(user, options)),
    store,
    close: () => closing ??= Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
