/**
 * The load: cookie-holding clients, each logging in, then looping `GET /`
 * with an occasional login or logout, switching between the two instances
 * so that reads on one instance follow writes on the other.
 */
import { type Reply, request } from "./http.js"
import type { Instance } from "./instances.js"
import { ClientModel, type Findings, type Kind } from "./model.js"

export interface Sample {
  readonly kind: Kind
  readonly instance: string
  readonly status: number
  readonly startedAt: number
  readonly ms: number
  readonly error?: string | undefined
}

export interface LoadOptions {
  readonly clients: number
  readonly deadline: number
  readonly maxRequestsPerClient: number
  readonly timeoutMs: number
  readonly thinkMs: readonly [min: number, max: number]
  readonly stopped: () => boolean
  /** See {@link ClientModel}. */
  readonly settledAt: (t: number) => number
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const visitsOf = (reply: Reply): number | undefined => {
  if (reply.status !== 200) return undefined
  try {
    const body: unknown = JSON.parse(reply.body)
    const visits = typeof body === "object" && body !== null && "visits" in body ? body.visits : undefined
    return typeof visits === "number" && Number.isInteger(visits) ? visits : undefined
  } catch {
    return undefined
  }
}

const nextKind = (model: ClientModel): Kind => {
  if (model.sid === undefined) return "login"
  const roll = Math.random()
  return roll < 0.02 ? "logout" : roll < 0.05 ? "login" : "get"
}

/** Runs every client until the deadline or its request budget; returns the models for the final check. */
export const run = async (
  instances: readonly [Instance, Instance],
  options: LoadOptions,
  findings: Findings,
  samples: Array<Sample>
): Promise<ReadonlyArray<ClientModel>> => {
  const models = Array.from({ length: options.clients }, (_, i) => new ClientModel(i, findings, options.settledAt))
  const client = async (model: ClientModel) => {
    let on = model.id % 2
    for (let n = 0; n < options.maxRequestsPerClient; n++) {
      if (Date.now() >= options.deadline || options.stopped()) break
      // Mostly switch, sometimes stay: both same-instance and cross-instance reads happen.
      if (Math.random() < 0.7) on = 1 - on
      const instance = instances[on]!
      const kind = nextKind(model)
      const reply = await request(instance.port, {
        method: kind === "get" ? "GET" : "POST",
        path: kind === "get" ? "/" : `/${kind}`,
        cookie: model.cookie(),
        ...(kind === "login" ? { body: JSON.stringify({ name: `user-${model.id}` }) } : {}),
        timeoutMs: options.timeoutMs
      })
      model.observe(kind, instance.name, reply, visitsOf(reply))
      samples.push({
        kind,
        instance: instance.name,
        status: reply.status,
        startedAt: reply.startedAt,
        ms: reply.ms,
        error: reply.error
      })
      const [min, max] = options.thinkMs
      await sleep(min + Math.random() * (max - min))
    }
  }
  await Promise.all(models.map(client))
  return models
}
