/**
 * Redis Cluster slots: which slot a key hashes to, and which master serves it
 * in ioredis's current slot map.
 */
import type { Cluster, Redis as IORedis } from "ioredis"

/**
 * How many slots a Redis Cluster has.
 *
 * @internal
 */
export const count = 16384

const crcTable = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1
    table[i] = crc & 0xffff
  }
  return table
})()

const encoder = new TextEncoder()

/**
 * The Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the part between
 * the first `{` and the next `}`, when not empty) or of the whole key, modulo
 * 16384.
 *
 * @internal
 */
export const slotOf = (key: string): number => {
  const open = key.indexOf("{")
  let hashed = key
  if (open >= 0) {
    const close = key.indexOf("}", open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  let crc = 0
  for (const byte of encoder.encode(hashed)) crc = ((crc << 8) & 0xffff) ^ crcTable[((crc >> 8) ^ byte) & 0xff]!
  return crc % count
}

/**
 * The `"host:port"` of a node connection, as ioredis's slot map names nodes.
 *
 * @internal
 */
export const keyOfNode = (node: IORedis): string => `${node.options.host ?? "127.0.0.1"}:${node.options.port ?? 6379}`

/**
 * The connection ioredis uses for the master of `key`'s slot, as its slot map
 * says now; `undefined` while the slot has no known master.
 *
 * @internal
 */
export const masterOf = (cluster: Cluster, key: string): IORedis | undefined => {
  const owner = cluster.slots[slotOf(key)]?.[0]
  return owner === undefined ? undefined : cluster.nodes("master").find((node) => keyOfNode(node) === owner)
}
