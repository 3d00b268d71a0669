// Hand-written SVG charts for reports: line charts (with optional ± bands), bar charts (with error
// bars and value labels), scatter plots and heatmaps (a matrix of values in cells). Each has a title, labelled axes with "nice" ticks, light
// grid lines and a legend; colours are the Okabe-Ito palette (distinguishable with colour-blindness),
// and scatter series differ by marker shape too.

export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#8C6D31'];
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const INK = '#222222';
const GRID = '#e3e3e3';
const WIDTH = 760;
const HEIGHT = 440;
const MARGIN = { top: 78, right: 28, bottom: 66, left: 84 };

export const colour = (i: number) => PALETTE[i % PALETTE.length]!;

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Rough width of text in the chart font: enough to lay out legends and labels. */
const textWidth = (s: string, size: number) => s.length * size * 0.58;

type Attrs = Record<string, string | number>;
const attrs = (a: Attrs) =>
  Object.entries(a)
    .map(([k, v]) => ` ${k}="${escapeXml(typeof v === 'number' ? fmt(v) : v)}"`)
    .join('');
const el = (name: string, a: Attrs, body?: string) => (body === undefined ? `<${name}${attrs(a)}/>` : `<${name}${attrs(a)}>${body}</${name}>`);
const text = (x: number, y: number, s: string, a: Attrs = {}) => el('text', { x, y, ...a }, escapeXml(s));
/** Coordinates with two decimals at most. */
const fmt = (v: number) => String(Math.round(v * 100) / 100);

// ── scales ─────────────────────────────────────────────────────────────────────────────────────

export interface Ticks {
  lo: number;
  hi: number;
  step: number;
  values: number[];
}

/** About `count` ticks at 1, 2, 2.5 or 5 × 10^k covering [lo, hi]; the domain widens to whole ticks. */
export function niceTicks(lo: number, hi: number, count = 5): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new RangeError(`niceTicks: bounds must be finite, got ${lo}, ${hi}`);
  if (hi < lo) [lo, hi] = [hi, lo];
  // A single value: all zeros (e.g. no exact matches) show as 0..1, anything else gets ±10%.
  if (hi === lo) [lo, hi] = lo === 0 ? [0, 1] : [lo - Math.abs(lo) * 0.1, hi + Math.abs(lo) * 0.1];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const start = Math.floor(lo / step + 1e-9) * step;
  const end = Math.ceil(hi / step - 1e-9) * step;
  const values: number[] = [];
  for (let i = 0; start + i * step <= end + step * 1e-9; i++) values.push(start + i * step);
  return { lo: start, hi: end, step, values };
}

/** A tick label with as many decimals as the step needs. */
export function tickLabel(v: number, step: number): string {
  if (Math.abs(v) < step * 1e-9) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(1);
  // The fewest decimals that write the step exactly (2.5 needs one, 0.25 two).
  let decimals = 0;
  while (decimals < 6 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6 * step * 10 ** decimals) decimals++;
  return v.toFixed(decimals);
}

interface Frame {
  x: (v: number) => number;
  y: (v: number) => number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** The plot area; `top` and `bottom` move to make room for a taller legend or rotated labels. */
function frame(xt: { lo: number; hi: number }, yt: Ticks, top = MARGIN.top, bottom = HEIGHT - MARGIN.bottom): Frame {
  const left = MARGIN.left;
  const right = WIDTH - MARGIN.right;
  return {
    left,
    right,
    top,
    bottom,
    x: (v) => left + ((v - xt.lo) / (xt.hi - xt.lo)) * (right - left),
    y: (v) => bottom - ((v - yt.lo) / (yt.hi - yt.lo)) * (bottom - top),
  };
}

// ── shared pieces ─────────────────────────────────────────────────────────────────────────────

function svgDoc(title: string, body: string[], subtitle?: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="${FONT}" fill="${INK}">`,
    el('title', {}, escapeXml(title)),
    el('rect', { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: '#ffffff' }),
    text(WIDTH / 2, 28, title, { 'font-size': 19, 'font-weight': 'bold', 'text-anchor': 'middle' }),
    ...(subtitle ? [text(WIDTH / 2, 48, subtitle, { 'font-size': 12.5, 'text-anchor': 'middle', fill: '#555555' })] : []),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function yAxis(f: Frame, yt: Ticks, label: string): string[] {
  const out = yt.values.flatMap((v) => [
    el('line', { x1: f.left, x2: f.right, y1: f.y(v), y2: f.y(v), stroke: v === 0 ? '#9a9a9a' : GRID, 'stroke-width': 1 }),
    text(f.left - 8, f.y(v) + 4.5, tickLabel(v, yt.step), { 'font-size': 13, 'text-anchor': 'end' }),
  ]);
  const cy = (f.top + f.bottom) / 2;
  out.push(text(22, cy, label, { 'font-size': 14.5, 'text-anchor': 'middle', transform: `rotate(-90 22 ${fmt(cy)})` }));
  return out;
}

function xAxisNumeric(f: Frame, xt: Ticks, label: string): string[] {
  const out = xt.values.flatMap((v) => [
    el('line', { x1: f.x(v), x2: f.x(v), y1: f.top, y2: f.bottom, stroke: GRID, 'stroke-width': 1 }),
    el('line', { x1: f.x(v), x2: f.x(v), y1: f.bottom, y2: f.bottom + 5, stroke: INK }),
    text(f.x(v), f.bottom + 20, tickLabel(v, xt.step), { 'font-size': 13, 'text-anchor': 'middle' }),
  ]);
  out.push(text((f.left + f.right) / 2, HEIGHT - 18, label, { 'font-size': 14.5, 'text-anchor': 'middle' }));
  return out;
}

const axesBox = (f: Frame) => [
  el('line', { x1: f.left, x2: f.left, y1: f.top, y2: f.bottom, stroke: INK }),
  el('line', { x1: f.left, x2: f.right, y1: f.bottom, y2: f.bottom, stroke: INK }),
];

type Shape = 'circle' | 'square' | 'triangle' | 'diamond';
const SHAPES: Shape[] = ['circle', 'square', 'triangle', 'diamond'];

function marker(shape: Shape, x: number, y: number, r: number, fill: string, extra: Attrs = {}): string {
  const a = { fill, stroke: '#ffffff', 'stroke-width': 1, ...extra };
  if (shape === 'circle') return el('circle', { cx: x, cy: y, r, ...a });
  if (shape === 'square') return el('rect', { x: x - r * 0.9, y: y - r * 0.9, width: r * 1.8, height: r * 1.8, ...a });
  const pts = shape === 'triangle' ? [[0, -1.2], [1.1, 0.8], [-1.1, 0.8]] : [[0, -1.3], [1.1, 0], [0, 1.3], [-1.1, 0]];
  return el('polygon', { points: pts.map(([dx, dy]) => `${fmt(x + dx! * r)},${fmt(y + dy! * r)}`).join(' '), ...a });
}

interface LegendItem {
  name: string;
  colour: string;
  kind: 'line' | 'dashed' | Shape;
}

const LEGEND_SIZE = 13;
const LEGEND_ROW = 20;
const legendWidth = (it: LegendItem) => 30 + textWidth(it.name, LEGEND_SIZE);

/** Centred rows under the title, wrapping when a row is full; `bottom` is where the plot may start. */
function legend(items: readonly LegendItem[], y: number): { svg: string[]; bottom: number } {
  const rows: LegendItem[][] = [];
  let used = Infinity;
  for (const it of items) {
    if (used + legendWidth(it) > WIDTH - 40) {
      rows.push([]);
      used = -20;
    }
    rows.at(-1)!.push(it);
    used += legendWidth(it) + 20;
  }
  const svg = rows.flatMap((row, r) => {
    let x = (WIDTH - row.reduce((s, it) => s + legendWidth(it) + 20, -20)) / 2;
    const cy = y + r * LEGEND_ROW;
    return row.flatMap((it) => {
      const key =
        it.kind === 'line' || it.kind === 'dashed'
          ? el('line', { x1: x, x2: x + 24, y1: cy, y2: cy, stroke: it.colour, 'stroke-width': 2.5, ...(it.kind === 'dashed' ? { 'stroke-dasharray': '6 4' } : {}) })
          : marker(it.kind, x + 12, cy, 5.5, it.colour);
      const label = text(x + 30, cy + 4.5, it.name, { 'font-size': LEGEND_SIZE });
      x += legendWidth(it) + 20;
      return [key, label];
    });
  });
  return { svg, bottom: Math.max(MARGIN.top, y + (rows.length - 1) * LEGEND_ROW + 20) };
}

/** The legend's first row: under the subtitle when there is one. */
const legendTop = (c: { subtitle?: string }) => (c.subtitle ? 70 : 54);

const noData = (f: Frame) => text((f.left + f.right) / 2, (f.top + f.bottom) / 2, 'no data', { 'font-size': 16, 'text-anchor': 'middle', fill: '#777777' });

const finite = (...xs: number[]) => xs.every(Number.isFinite);

/** Tick ranges over values, widened to include `include` (e.g. 0 for bars). */
function ticksOver(values: number[], include: number[] = []): Ticks {
  const vs = [...values, ...include].filter(Number.isFinite);
  return vs.length ? niceTicks(Math.min(...vs), Math.max(...vs)) : niceTicks(0, 1);
}

// ── line chart ────────────────────────────────────────────────────────────────────────────────

export interface LineSeries {
  name: string;
  points: readonly { x: number; y: number; lo?: number; hi?: number }[];
  dashed?: boolean;
  colour?: string;
}

export interface ChartText {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
}

/** Lines over x; points with lo/hi get a shaded band (e.g. ± one std). */
export function lineChart(c: ChartText & { series: readonly LineSeries[] }): string {
  const pts = c.series.flatMap((s) => s.points.filter((p) => finite(p.x, p.y)));
  const xt = ticksOver(pts.map((p) => p.x));
  const yt = ticksOver(pts.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]));
  const key = legend(c.series.map((s, i) => ({ name: s.name, colour: s.colour ?? colour(i), kind: s.dashed ? 'dashed' : 'line' })), legendTop(c));
  const f = frame(xt, yt, key.bottom);
  const body: string[] = [...yAxis(f, yt, c.yLabel), ...xAxisNumeric(f, xt, c.xLabel)];
  c.series.forEach((s, i) => {
    const col = s.colour ?? colour(i);
    const ok = s.points.filter((p) => finite(p.x, p.y));
    const band = ok.filter((p) => finite(p.lo ?? NaN, p.hi ?? NaN));
    if (band.length > 1) {
      const poly = [...band.map((p) => [p.x, p.hi!]), ...[...band].reverse().map((p) => [p.x, p.lo!])];
      body.push(el('polygon', { points: poly.map(([x, y]) => `${fmt(f.x(x!))},${fmt(f.y(y!))}`).join(' '), fill: col, 'fill-opacity': 0.15, stroke: 'none' }));
    }
    if (ok.length > 1) {
      const d = ok.map((p, k) => `${k ? 'L' : 'M'}${fmt(f.x(p.x))} ${fmt(f.y(p.y))}`).join(' ');
      body.push(el('path', { d, fill: 'none', stroke: col, 'stroke-width': 2.5, 'stroke-linejoin': 'round', ...(s.dashed ? { 'stroke-dasharray': '7 4' } : {}) }));
    }
    if (ok.length <= 30) for (const p of ok) body.push(marker('circle', f.x(p.x), f.y(p.y), 3.5, col, { 'data-series': s.name }));
  });
  if (pts.length === 0) body.push(noData(f));
  body.push(...axesBox(f), ...key.svg);
  return svgDoc(c.title, body, c.subtitle);
}

// ── bar chart ─────────────────────────────────────────────────────────────────────────────────

export interface Bar {
  label: string;
  value: number;
  /** Half-width of the error bar. */
  error?: number;
  colour?: string;
}

const BAR_LABEL = 13.5;

/**
 * Category labels under bars: one line when they fit the slot, else split after a hyphen or space
 * onto two lines, else rotated; `extra` is the height they need beyond one line.
 */
function barLabels(labels: readonly string[], room: number): { extra: number; draw: (i: number, cx: number, y: number) => string } {
  const fits = (s: string) => textWidth(s, BAR_LABEL) <= room;
  const split = (s: string): [string, string] | null => {
    const at = [...s.matchAll(/[- ]/g)].map((m) => m.index! + 1).sort((a, b) => Math.abs(a - s.length / 2) - Math.abs(b - s.length / 2))[0];
    return at === undefined ? null : [s.slice(0, at).trimEnd(), s.slice(at)];
  };
  if (labels.every(fits)) return { extra: 0, draw: (i, cx, y) => text(cx, y + 21, labels[i]!, { 'font-size': BAR_LABEL, 'text-anchor': 'middle' }) };
  const lines = labels.map((s) => (fits(s) ? [s] : split(s)));
  if (lines.every((l) => l && l.every(fits))) {
    return {
      extra: 17,
      draw: (i, cx, y) =>
        el('text', { x: cx, y: y + 21, 'font-size': BAR_LABEL, 'text-anchor': 'middle' }, lines[i]!.map((l, k) => el('tspan', { x: cx, dy: k ? 17 : 0 }, escapeXml(l))).join('')),
    };
  }
  const longest = Math.max(...labels.map((s) => textWidth(s, BAR_LABEL)));
  return {
    extra: Math.min(120, longest * 0.5),
    draw: (i, cx, y) => text(cx, y + 16, labels[i]!, { 'font-size': BAR_LABEL, 'text-anchor': 'end', transform: `rotate(-30 ${fmt(cx)} ${fmt(y + 16)})` }),
  };
}

/** One bar per category, from zero, with error bars and the value written above each bar. */
export function barChart(c: Omit<ChartText, 'xLabel'> & { xLabel?: string; bars: readonly Bar[]; digits?: number }): string {
  const ok = c.bars.filter((b) => Number.isFinite(b.value));
  // 8% headroom above the tallest bar leaves room for its value label.
  const tops = ok.flatMap((b) => [b.value + (b.error ?? 0), b.value - (b.error ?? 0)]);
  const yt = ticksOver(tops.map((v) => v * 1.08), [0]);
  const slot = (WIDTH - MARGIN.left - MARGIN.right) / Math.max(1, c.bars.length);
  const labels = barLabels(c.bars.map((b) => b.label), slot - 8);
  const f = frame({ lo: 0, hi: 1 }, yt, c.subtitle ? MARGIN.top : 60, HEIGHT - MARGIN.bottom - labels.extra);
  const body: string[] = [...yAxis(f, yt, c.yLabel)];
  const barW = Math.min(90, slot * 0.62);
  c.bars.forEach((b, i) => {
    const cx = f.left + slot * (i + 0.5);
    const col = b.colour ?? colour(i);
    body.push(labels.draw(i, cx, f.bottom));
    if (!Number.isFinite(b.value)) {
      body.push(text(cx, f.bottom - 8, 'n/a', { 'font-size': 13, 'text-anchor': 'middle', fill: '#777777' }));
      return;
    }
    const y0 = f.y(0);
    const y1 = f.y(b.value);
    body.push(el('rect', { x: cx - barW / 2, y: Math.min(y0, y1), width: barW, height: Math.abs(y0 - y1), fill: col, 'data-label': b.label }));
    let top = Math.min(y0, y1);
    if (b.error && b.error > 0) {
      const [hi, lo] = [f.y(b.value + b.error), f.y(b.value - b.error)];
      body.push(
        el('path', { d: `M${fmt(cx)} ${fmt(lo)} V${fmt(hi)} M${fmt(cx - 8)} ${fmt(hi)} H${fmt(cx + 8)} M${fmt(cx - 8)} ${fmt(lo)} H${fmt(cx + 8)}`, stroke: INK, 'stroke-width': 1.6, fill: 'none' }),
      );
      top = Math.min(top, hi);
    }
    body.push(text(cx, top - 7, b.value.toFixed(c.digits ?? 2), { 'font-size': 13, 'text-anchor': 'middle', 'font-weight': 'bold' }));
  });
  if (ok.length === 0) body.push(noData(f));
  if (c.xLabel) body.push(text((f.left + f.right) / 2, HEIGHT - 14, c.xLabel, { 'font-size': 14.5, 'text-anchor': 'middle' }));
  body.push(...axesBox(f));
  return svgDoc(c.title, body, c.subtitle);
}

// ── scatter ───────────────────────────────────────────────────────────────────────────────────

export interface ScatterSeries {
  name: string;
  points: readonly { x: number; y: number }[];
  colour?: string;
}

/** Points per series, each series its own colour and marker shape; the axes include 0. */
export function scatterChart(c: ChartText & { series: readonly ScatterSeries[] }): string {
  const pts = c.series.flatMap((s) => s.points.filter((p) => finite(p.x, p.y)));
  const xt = ticksOver(pts.map((p) => p.x), [0]);
  const yt = ticksOver(pts.map((p) => p.y), [0]);
  const key = legend(c.series.map((s, i) => ({ name: s.name, colour: s.colour ?? colour(i), kind: SHAPES[i % SHAPES.length]! })), legendTop(c));
  const f = frame(xt, yt, key.bottom);
  const body: string[] = [...yAxis(f, yt, c.yLabel), ...xAxisNumeric(f, xt, c.xLabel)];
  c.series.forEach((s, i) => {
    const col = s.colour ?? colour(i);
    for (const p of s.points.filter((p) => finite(p.x, p.y))) body.push(marker(SHAPES[i % SHAPES.length]!, f.x(p.x), f.y(p.y), 5.5, col, { 'fill-opacity': 0.85, 'data-series': s.name }));
  });
  if (pts.length === 0) body.push(noData(f));
  body.push(...axesBox(f), ...key.svg);
  return svgDoc(c.title, body, c.subtitle);
}

// ── heatmap ───────────────────────────────────────────────────────────────────────────────────

/**
 * A matrix as coloured cells, white at `lo` to the palette's first blue at `hi`, each cell with its
 * value written in; NaN cells stay empty (e.g. the upper triangle of a forgetting matrix).
 */
export function heatmap(c: ChartText & { rows: readonly string[]; cols: readonly string[]; values: readonly (readonly number[])[]; lo: number; hi: number; digits?: number }): string {
  const top = c.subtitle ? MARGIN.top : 60;
  const bottom = HEIGHT - MARGIN.bottom;
  const left = MARGIN.left + 30;
  const right = WIDTH - MARGIN.right;
  const cw = (right - left) / Math.max(1, c.cols.length);
  const ch = (bottom - top) / Math.max(1, c.rows.length);
  const [r0, g0, b0] = [0x00, 0x72, 0xb2];
  const shade = (v: number) => {
    const t = Math.max(0, Math.min(1, (v - c.lo) / (c.hi - c.lo || 1)));
    const mix = (x: number) => Math.round(255 + (x - 255) * t);
    return { fill: `rgb(${mix(r0)},${mix(g0)},${mix(b0)})`, dark: t > 0.55 };
  };
  const body: string[] = [];
  c.rows.forEach((row, i) => {
    body.push(text(left - 8, top + ch * (i + 0.5) + 4.5, row, { 'font-size': 12.5, 'text-anchor': 'end' }));
    c.cols.forEach((_, j) => {
      const v = c.values[i]?.[j] ?? NaN;
      const [x, y] = [left + cw * j, top + ch * i];
      if (!Number.isFinite(v)) return;
      const s = shade(v);
      body.push(el('rect', { x, y, width: cw, height: ch, fill: s.fill, stroke: '#ffffff', 'stroke-width': 1 }));
      if (cw > 26 && ch > 14) body.push(text(x + cw / 2, y + ch / 2 + 4.5, v.toFixed(c.digits ?? 2), { 'font-size': 12, 'text-anchor': 'middle', fill: s.dark ? '#ffffff' : INK }));
    });
  });
  c.cols.forEach((col, j) => body.push(text(left + cw * (j + 0.5), bottom + 18, col, { 'font-size': 12.5, 'text-anchor': 'middle' })));
  body.push(text((left + right) / 2, HEIGHT - 14, c.xLabel, { 'font-size': 14.5, 'text-anchor': 'middle' }));
  const cy = (top + bottom) / 2;
  body.push(text(22, cy, c.yLabel, { 'font-size': 14.5, 'text-anchor': 'middle', transform: `rotate(-90 22 ${fmt(cy)})` }));
  body.push(el('rect', { x: left, y: top, width: right - left, height: bottom - top, fill: 'none', stroke: '#9a9a9a', 'stroke-width': 1 }));
  return svgDoc(c.title, body, c.subtitle);
}
