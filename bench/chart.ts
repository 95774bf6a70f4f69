/**
 * A hand-written SVG bar chart (no charting dependency): stacked panels of
 * horizontal bars, on a log or linear scale.
 */
export interface Bar {
  readonly series: string
  readonly value: number
  readonly text: string
}

export interface Row {
  readonly label: string
  readonly bars: ReadonlyArray<Bar>
}

export interface Panel {
  readonly title: string
  /** `row`: each row scaled to its own largest bar. */
  readonly scale: "log" | "linear" | "row"
  readonly rows: ReadonlyArray<Row>
  readonly ticks?: ReadonlyArray<{ readonly value: number; readonly label: string }>
}

export interface Chart {
  readonly title: string
  readonly colors: Readonly<Record<string, string>>
  readonly panels: ReadonlyArray<Panel>
  readonly footer: ReadonlyArray<string>
}

const width = 900
const labelWidth = 190
const valueRoom = 250
const plotWidth = width - labelWidth - valueRoom - 20
const barHeight = 13
const barGap = 3
const rowGap = 12

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

const text = (x: number, y: number, s: string, attrs = "") =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`

const scaler = (panel: Panel, row: Row): (v: number) => number => {
  const values = panel.rows.flatMap((r) => r.bars.map((b) => b.value)).filter((v) => v > 0 && Number.isFinite(v))
  if (panel.scale === "log") {
    const lo = Math.log10(Math.min(...values, ...(panel.ticks ?? []).map((t) => t.value)))
    const hi = Math.log10(Math.max(...values, ...(panel.ticks ?? []).map((t) => t.value)))
    return (v) => (v > 0 ? Math.max(2, ((Math.log10(v) - lo) / (hi - lo || 1)) * plotWidth) : 0)
  }
  const max = panel.scale === "row" ? Math.max(...row.bars.map((b) => b.value), 1e-9) : Math.max(...values, 1e-9)
  return (v) => (v > 0 ? Math.max(2, (v / max) * plotWidth) : 0)
}

const renderPanel = (panel: Panel, colors: Chart["colors"], top: number): { svg: string; height: number } => {
  const parts: Array<string> = [text(10, top + 16, panel.title, `font-weight="600" font-size="14"`)]
  let y = top + 30
  const plotTop = y
  for (const row of panel.rows) {
    const scale = scaler(panel, row)
    const rowHeight = row.bars.length * (barHeight + barGap) - barGap
    parts.push(text(labelWidth - 8, y + rowHeight / 2 + 4, row.label, `text-anchor="end" font-size="12"`))
    for (const bar of row.bars) {
      const w = scale(bar.value)
      parts.push(
        `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" rx="2" fill="${
          colors[bar.series] ?? "#888"
        }"><title>${esc(`${bar.series}: ${bar.text}`)}</title></rect>`,
        text(labelWidth + w + 5, y + barHeight - 3, `${bar.text}  ${bar.series}`, `font-size="11" fill="#333"`)
      )
      y += barHeight + barGap
    }
    y += rowGap
  }
  if (panel.scale === "log" && panel.ticks !== undefined) {
    const scale = scaler(panel, panel.rows[0]!)
    for (const tick of panel.ticks) {
      const x = labelWidth + scale(tick.value)
      parts.unshift(
        `<line x1="${x.toFixed(1)}" y1="${plotTop - 4}" x2="${x.toFixed(1)}" y2="${y - rowGap}" stroke="#e5e7eb"/>`
      )
      parts.push(text(x, y + 2, tick.label, `text-anchor="middle" font-size="10" fill="#666"`))
    }
    y += 14
  }
  return { svg: parts.join("\n"), height: y - top + 6 }
}

export const renderChart = (chart: Chart): string => {
  const parts: Array<string> = [text(10, 24, chart.title, `font-weight="700" font-size="16"`)]
  let top = 34
  for (const panel of chart.panels) {
    const { svg, height } = renderPanel(panel, chart.colors, top)
    parts.push(svg)
    top += height + 8
  }
  for (const line of chart.footer) {
    parts.push(text(10, top + 12, line, `font-size="11" fill="#444"`))
    top += 16
  }
  const height = top + 10
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    `</svg>`,
    ""
  ].join("\n")
}
