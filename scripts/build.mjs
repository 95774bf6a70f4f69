// `npm run build`: ESM to dist/esm and CommonJS to dist/cjs, each with its own type declarations,
// as Effect's own packages ship. dist/cjs/package.json tells Node (and TypeScript) that the .js
// and .d.ts files there are CommonJS although the package itself is "type": "module".
import { execFileSync } from "node:child_process"
import { rmSync, writeFileSync } from "node:fs"

rmSync("dist", { recursive: true, force: true })
const tsc = (project) => execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", project], { stdio: "inherit" })
tsc("tsconfig.build.json")
tsc("tsconfig.cjs.json")
writeFileSync("dist/cjs/package.json", `${JSON.stringify({ type: "commonjs" }, null, 2)}\n`)
