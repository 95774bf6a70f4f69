/**
 * One HTTP request on loopback, with a hard client-side timeout so that no
 * request can hang the run. Never rejects: transport failures are replies
 * with status 0.
 */
import * as http from "node:http"

export interface Reply {
  /** The HTTP status, or 0 when no response came (connection error, client timeout). */
  readonly status: number
  readonly body: string
  /** The `sid` cookie the reply sets: its value, `null` when it expires it, `undefined` when it says nothing. */
  readonly sid: string | null | undefined
  readonly startedAt: number
  readonly ms: number
  /** Why there is no response, when status is 0. */
  readonly error?: string
}

export interface RequestOptions {
  readonly method: "GET" | "POST"
  readonly path: string
  /** The raw Cookie header, if any. */
  readonly cookie?: string | undefined
  readonly body?: string | Buffer | undefined
  readonly contentType?: string | undefined
  readonly timeoutMs: number
  /** Which connection pool to use: fuzz cases get their own, so that what they do to a connection stays theirs. */
  readonly pool?: string | undefined
}

const agents = new Map<string, http.Agent>()
const agentFor = (port: number, pool: string) => {
  let agent = agents.get(`${pool}:${port}`)
  if (agent === undefined) {
    // FIFO keeps every pooled socket busy: an idle one meets the server's keep-alive timeout, and a request sent on it
    // as it closes fails with ECONNRESET, a client-side race that says nothing about the app.
    agent = new http.Agent({ keepAlive: true, maxSockets: 128, scheduling: "fifo" })
    agents.set(`${pool}:${port}`, agent)
  }
  return agent
}

/** Closes the kept-alive sockets, so that nothing keeps the process alive. */
export const closeAgents = (): void => {
  for (const agent of agents.values()) agent.destroy()
  agents.clear()
}

const sidOf = (headers: http.IncomingHttpHeaders): string | null | undefined => {
  for (const line of headers["set-cookie"] ?? []) {
    const [pair = "", ...attributes] = line.split(";")
    const eq = pair.indexOf("=")
    if (pair.slice(0, eq).trim() !== "sid") continue
    const expired = attributes.some((a) => /^\s*max-age\s*=\s*(0|-)/i.test(a)) ||
      attributes.some((a) => /^\s*expires\s*=/i.test(a) && Date.parse(a.split("=")[1] ?? "") <= Date.now())
    return expired ? null : decodeURIComponent(pair.slice(eq + 1).trim())
  }
  return undefined
}

/** Sends one request to 127.0.0.1:`port`. */
export const request = (port: number, options: RequestOptions): Promise<Reply> =>
  new Promise((resolve) => {
    const startedAt = Date.now()
    const t0 = performance.now()
    let settled = false
    const done = (reply: Omit<Reply, "startedAt" | "ms">) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({ ...reply, startedAt, ms: performance.now() - t0 })
    }
    const headers: Record<string, string> = {}
    if (options.cookie !== undefined) headers["cookie"] = options.cookie
    if (options.body !== undefined) {
      headers["content-type"] = options.contentType ?? "application/json"
      headers["content-length"] = String(Buffer.byteLength(options.body))
    }
    let req: http.ClientRequest
    try {
      req = http.request({
        host: "127.0.0.1",
        port,
        method: options.method,
        path: options.path,
        agent: agentFor(port, options.pool ?? "clients"),
        headers
      }, (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => {
          // Bodies are small JSON; a huge one is a finding of its own, not something to keep.
          if (body.length < 65_536) body += chunk
        })
        res.on("end", () => done({ status: res.statusCode ?? 0, body, sid: sidOf(res.headers) }))
        res.on("error", (error) => done({ status: 0, body: "", sid: undefined, error: error.message }))
      })
    } catch (error) {
      // e.g. a header value node refuses to send: a fuzz case that never left this process.
      resolve({ status: -1, body: "", sid: undefined, startedAt, ms: 0, error: String(error) })
      return
    }
    // Declared after `done`, which uses it: every caller of `done` runs asynchronously, after this line.
    const timer = setTimeout(() => {
      done({ status: 0, body: "", sid: undefined, error: `no response within ${options.timeoutMs} ms` })
      req.destroy()
    }, options.timeoutMs)
    req.on("error", (error) => done({ status: 0, body: "", sid: undefined, error: error.message }))
    req.end(options.body)
  })
