import { startRedis } from "./redis.js"
import { runRemoteLatency } from "./remote/remoteLatency.js"
const redis = await startRedis()
try { const r = await runRemoteLatency(redis); console.log(JSON.stringify(r.servers, null, 1)) } finally { await redis.stop() }
process.exit(0)
