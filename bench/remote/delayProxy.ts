/**
 * Child process entry: a TCP proxy that delays every chunk by a fixed time
 * in both directions, keeping the order of each connection's bytes. It
 * stands in for netem, which this kernel lacks, to put Redis "a network hop
 * away". Arguments: target port, delay in ms (each way). Tells the parent its
 * port over IPC.
 *
 * Timers in Node have 1 ms granularity, too coarse for a 0.25 ms delay, and
 * spinning would take a core from the processes under test. A worker thread
 * therefore sleeps in `Atomics.wait` (sub-millisecond timeouts) until the
 * oldest chunk is due and wakes this thread with a message.
 */
import * as net from "node:net"
import { Worker } from "node:worker_threads"

interface Pending {
  readonly due: bigint
  readonly to: net.Socket
  /** `null`: the other side ended, end this one once what came before is delivered. */
  readonly data: Buffer | null
}

// The timer thread: CommonJS, evaluated as a string so it needs no loader.
const timerThread = `
const { workerData, parentPort } = require("node:worker_threads")
const deadline = new BigInt64Array(workerData, 0, 1)
const signal = new Int32Array(workerData, 8, 1)
const EARLY = 60000n
for (;;) {
  const seen = Atomics.load(signal, 0)
  const due = Atomics.load(deadline, 0)
  if (due === 0n) { Atomics.wait(signal, 0, seen); continue }
  const now = process.hrtime.bigint()
  // Wake EARLY early: the kernel's timer slack and the wake-up message to the main thread take about that long.
  if (now < due - EARLY) { Atomics.wait(signal, 0, seen, Number(due - EARLY - now) / 1e6); continue }
  Atomics.store(deadline, 0, 0n)
  parentPort.postMessage(0)
}
`

const main = () => {
  const targetPort = Number(process.argv[2])
  const delayMs = Number(process.argv[3] ?? "0.25")
  if (!Number.isFinite(targetPort) || !(delayMs >= 0)) throw new Error("usage: delayProxy <targetPort> [delayMs]")
  const delayNs = BigInt(Math.round(delayMs * 1e6))
  const shared = new SharedArrayBuffer(16)
  const deadline = new BigInt64Array(shared, 0, 1)
  const signal = new Int32Array(shared, 8, 1)
  const timer = new Worker(timerThread, { eval: true, workerData: shared })
  timer.unref()

  // One FIFO for every connection: the delay is the same for all, so due times only grow.
  const queue: Array<Pending | undefined> = []
  let head = 0
  let armed = false
  const arm = () => {
    armed = true
    Atomics.store(deadline, 0, queue[head]!.due)
    Atomics.add(signal, 0, 1)
    Atomics.notify(signal, 0)
  }
  const deliver = () => {
    armed = false
    // Chunks due within the next 60 µs go now: the timer thread wakes that early (see above).
    const now = process.hrtime.bigint() + 60_000n
    while (head < queue.length && queue[head]!.due <= now) {
      const { data, to } = queue[head]!
      queue[head++] = undefined
      if (to.destroyed) continue
      if (data === null) to.end()
      else to.write(data)
    }
    if (head === queue.length) {
      queue.length = 0
      head = 0
    } else arm()
  }
  timer.on("message", deliver)
  const forward = (from: net.Socket, to: net.Socket) => {
    const push = (data: Buffer | null) => {
      queue.push({ due: process.hrtime.bigint() + delayNs, to, data })
      if (!armed) arm()
    }
    from.on("data", (data: Buffer) => push(data))
    from.on("end", () => push(null))
    from.on("error", () => to.destroy())
  }
  const server = net.createServer((client) => {
    client.setNoDelay(true)
    const upstream = net.connect(targetPort, "127.0.0.1")
    upstream.setNoDelay(true)
    forward(client, upstream)
    forward(upstream, client)
  })
  process.on("disconnect", () => process.exit(0))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    process.send?.({ port: typeof address === "object" && address !== null ? address.port : 0 })
  })
}

main()
