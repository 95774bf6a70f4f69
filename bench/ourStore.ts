/**
 * Opens one instance of our store (its own connections) outside any Effect
 * program, the way a Promise-based caller holds it.
 */
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as SessionStore from "../src/SessionStore.js"

export interface StoreOptions {
  readonly cache?: boolean
  readonly prefix?: string
}

export interface OpenStore {
  readonly store: SessionStore.SessionStore
  readonly close: () => Promise<void>
}

/** The Redis-backed layer for `server` ("host:port"), default settings but the cache switch. */
export const storeLayer = (
  server: string,
  options: StoreOptions = {}
): Layer.Layer<SessionStore.SessionStore, unknown> =>
  SessionStore.layer({
    server,
    expire: 900,
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    cache: { enabled: options.cache ?? true }
  })

export const openStore = async (server: string, options: StoreOptions = {}): Promise<OpenStore> => {
  const runtime = ManagedRuntime.make(storeLayer(server, options))
  const store = await runtime.runPromise(SessionStore.SessionStore)
  return { store, close: () => runtime.dispose() }
}
