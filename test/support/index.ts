/** Test support: real redis-server processes. */
export * as RedisServer from "./RedisServer.js"
