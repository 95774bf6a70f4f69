/**
 * "Did you mean …?": the known name closest to a misspelt one, for unknown
 * settings, options and environment variables.
 */

/** The edit distance between two names (insertions, deletions, substitutions, swaps of neighbours). */
const distance = (a: string, b: string): number => {
  const rows = a.length + 1
  const cols = b.length + 1
  const d: Array<Array<number>> = Array.from({ length: rows }, (_, i) => [i, ...Array<number>(cols - 1).fill(0)])
  for (let j = 1; j < cols; j++) d[0]![j] = j
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1)
      d[i]![j] = best
    }
  }
  return d[rows - 1]![cols - 1]!
}

/** Compared without case and separators: `Max_Age`, `maxage` and `MAX_AGE` are one name. */
const normalize = (name: string): string => name.toLowerCase().replace(/[_\-.\s]/g, "")

/**
 * The candidate closest to `name`, if one is close enough to be what was
 * meant: the same name in another case or spelling of separators, one that
 * `name` starts or ends with (`expires` → `expire`), or one a few edits away
 * (about one edit per four characters).
 *
 * @internal
 */
export const closest = (name: string, candidates: Iterable<string>): string | undefined => {
  const wanted = normalize(name)
  let best: string | undefined = undefined
  let bestScore = Infinity
  for (const candidate of candidates) {
    const known = normalize(candidate)
    if (known === "") continue
    const score = known === wanted
      ? 0
      : wanted.startsWith(known) || wanted.endsWith(known) || known.startsWith(wanted)
      ? 1 + Math.abs(known.length - wanted.length) / 100
      : distance(wanted, known)
    if (score < bestScore) {
      bestScore = score
      best = candidate
    }
  }
  const bound = Math.max(2, Math.floor(wanted.length / 4))
  return best !== undefined && bestScore <= bound ? best : undefined
}
