/**
 * A TCP proxy in front of a redis-server that can hold back what a client
 * sends: once armed with a marker, the first chunk from a client that
 * contains it, and everything that client sends after it, wait until the test
 * releases them. Replies pass freely. Tests use it to stop one store's
 * operation between two of its round trips, deterministically, while another
 * store acts.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"

/** A running proxy. */
export interface HoldingProxy {
  /** `"127.0.0.1:PORT"`, for a store's `server` setting. */
  readonly server: string
  /** Holds the next chunk any client sends that contains `marker`, and what that client sends after it. */
  readonly holdNext: (marker: string) => void
  /** Resolves once a chunk is being held. */
  readonly held: Effect.Effect<void>
  /** Sends what is held, in order, and stops holding. */
  readonly release: Effect.Effect<void>
}

/** A proxy to `port` on loopback, closed with the scope. */
export const make = (port: number): Effect.Effect<HoldingProxy, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ proxy: HoldingProxy; close: () => void }>((resume) => {
      let marker: string | undefined
      let holder: net.Socket | undefined
      const queue: Array<{ readonly to: net.Socket; readonly data: Buffer }> = []
      let onHeld: Array<() => void> = []
      const sockets = new Set<net.Socket>()
      const server = net.createServer((client) => {
        const upstream = net.connect(port, "127.0.0.1")
        sockets.add(client).add(upstream)
        client.on("data", (data) => {
          if (holder === undefined && marker !== undefined && data.includes(marker)) {
            holder = client
            marker = undefined
            for (const f of onHeld) f()
            onHeld = []
          }
          if (holder === client) queue.push({ to: upstream, data })
          else upstream.write(data)
        })
        upstream.on("data", (data) => client.write(data))
        const close = () => {
          client.destroy()
          upstream.destroy()
        }
        client.on("close", close).on("error", close)
        upstream.on("close", close).on("error", close)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as net.AddressInfo
        const proxy: HoldingProxy = {
          server: `127.0.0.1:${address.port}`,
          holdNext: (text) => (marker = text),
          held: Effect.async<void>((done) => {
            if (holder !== undefined) return done(Effect.void)
            onHeld.push(() => done(Effect.void))
          }),
          release: Effect.sync(() => {
            holder = undefined
            for (const { data, to } of queue.splice(0)) to.write(data)
          })
        }
        resume(Effect.succeed({
          proxy,
          close: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        }))
      })
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ proxy }) => proxy))
