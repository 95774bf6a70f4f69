import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Tracer from "effect/Tracer"

// The tracer every fiber has unless the app installs one (OpenTelemetry, say).
const defaultTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/**
 * Wraps `self` in a span named `name`, but only when the app has installed a
 * tracer. Effect's built-in tracer exports nothing, and a span costs more than
 * a cache hit, so without an exporter the span is skipped.
 *
 * @internal
 */
export const span = (name: string) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) => tracer === defaultTracer ? self : Effect.withSpan(self, name))

/**
 * Tells whether `fiber` runs under a tracer the app installed; for code that
 * already holds its fiber and would rather not spend an Effect step asking.
 *
 * @internal
 */
export const isTracing = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean => fiber.currentTracer !== defaultTracer
