// report.md with SVG charts (and PNGs when @resvg/resvg-js is installed): the method comparison from
// an evaluation, and reward curves from SEAL training metrics.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import type { EvalResult } from '../tasks/eval.ts';
import { barChart, colour, lineChart, scatterChart, type LineSeries } from './svg.ts';

/** One training iteration's metrics (SEAL's IterationMetrics fits); non-numeric fields are ignored. */
export interface TrainingRow {
  iteration: number;
  rewardMean: number;
  rewardStd?: number;
  [metric: string]: unknown;
}

export interface ReportInput {
  title?: string;
  evalResult?: EvalResult;
  metrics?: readonly TrainingRow[];
}

export interface WrittenReport {
  /** Paths written, report.md first. */
  files: string[];
  /** Why no PNGs were written, when none were. */
  pngNote?: string;
}

/** Curves of the reward chart, when present in the rows: key, legend name, dashed. */
const REWARD_CURVES: [string, string, boolean][] = [
  ['improvement', 'NLL drop, scored (train)', false],
  ['measuredImprovement', 'NLL drop, measured (train)', true],
  ['validationReward', 'validation reward', false],
  ['validationImprovement', 'NLL drop, scored (validation)', false],
  ['validationMeasured', 'NLL drop, measured (validation)', true],
];

const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);

export interface Chart {
  file: string;
  caption: string;
  svg: string;
}

function rewardChart(rows: readonly TrainingRow[]): Chart {
  const series: LineSeries[] = [
    {
      name: rows.some((r) => Number.isFinite(num(r.rewardStd))) ? 'reward (mean ± std)' : 'reward (mean)',
      points: rows.map((r) => {
        const s = num(r.rewardStd);
        return { x: r.iteration, y: r.rewardMean, ...(Number.isFinite(s) ? { lo: r.rewardMean - s, hi: r.rewardMean + s } : {}) };
      }),
    },
  ];
  for (const [key, name, dashed] of REWARD_CURVES) {
    const points = rows.filter((r) => Number.isFinite(num(r[key]))).map((r) => ({ x: r.iteration, y: num(r[key]) }));
    if (points.length) series.push({ name, points, dashed, colour: colour(series.length) });
  }
  return {
    file: 'training-reward.svg',
    caption: 'Reward per iteration (band: ± one std over the batch) and the answer-NLL drop from the base on the scored and measured questions, on training and validation passages. A training reward that rises while the measured or validation curves do not suggests reward hacking.',
    svg: lineChart({ title: 'SEAL training: reward over iterations', xLabel: 'iteration', yLabel: 'reward / NLL drop (nats)', series }),
  };
}

function methodCharts(r: EvalResult): Chart[] {
  const col = new Map(r.methods.map((m, i) => [m.name, colour(i)]));
  const edited = r.methods.filter((m) => r.runs.some((x) => x.method === m.name && x.editNorm > 0));
  return [
    {
      file: 'methods-nll.svg',
      caption: `Mean answer NLL per method on ${r.split} (${r.passages} passages, questions asked without the passage unless in-context); lower is better. Error bars: ± one standard error over passages.`,
      svg: barChart({
        title: `Answer NLL by method (${r.split})`,
        subtitle: 'lower is better · error bars: ± s.e. over passages',
        yLabel: 'answer NLL (nats/token)',
        bars: r.methods.map((m) => ({ label: m.name, value: m.nll.mean, error: m.nllSe, colour: col.get(m.name)! })),
      }),
    },
    {
      file: 'methods-em.svg',
      caption: 'Exact match of greedy answers (SQuAD normalisation). Error bars: ± one std over seeds, for methods with randomness.',
      svg: barChart({
        title: `Exact match by method (${r.split})`,
        subtitle: 'higher is better · error bars: ± std over seeds',
        yLabel: 'exact match (%)',
        digits: 1,
        bars: r.methods.map((m) => ({ label: m.name, value: 100 * m.em.mean, error: 100 * m.em.std, colour: col.get(m.name)! })),
      }),
    },
    {
      file: 'forgetting-vs-norm.svg',
      caption: 'Forgetting (general-text NLL of the edited model minus the base) against the edit norm ‖θ′ − θ‖, one point per passage and seed. Methods that do not edit weights sit at the origin and are left out.',
      svg: scatterChart({
        title: 'Forgetting against edit norm',
        subtitle: 'one point per passage and seed · above 0: worse on general text',
        xLabel: 'edit norm ‖θ′ − θ‖',
        yLabel: 'forgetting (Δ NLL, nats/token)',
        series: edited.map((m) => ({
          name: m.name,
          colour: col.get(m.name)!,
          points: r.runs.filter((x) => x.method === m.name).map((x) => ({ x: x.editNorm, y: x.forgetting })),
        })),
      }),
    },
  ];
}

function mdTable(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const pm = (m: number, s: number, d: number) => `${m.toFixed(d)} ± ${s.toFixed(d)}`;

function evalSection(r: EvalResult): string {
  const rows = r.methods.map((m) => [
    m.name,
    pm(m.nll.mean, m.nll.std, 3),
    m.nllSe.toFixed(3),
    m.seeds.length > 1 ? pm(100 * m.em.mean, 100 * m.em.std, 1) : (100 * m.em.mean).toFixed(1),
    m.msPerPassage.toFixed(0),
    m.forgetting.mean.toFixed(4),
    m.editNorm.mean.toPrecision(3),
    String(m.seeds.length),
  ]);
  return [
    `## Knowledge incorporation: ${r.split}`,
    '',
    `${r.passages} passages, ${r.questions} questions, seeds ${r.seeds.join(', ')}. Questions are asked without the passage in context, except by *in-context* (a reference point, not an edit). Forgetting is measured on ${r.generalLines} lines of general text (base NLL ${r.baseGeneralNll.toFixed(4)}).`,
    '',
    mdTable(['method', 'answer NLL (mean ± std over seeds)', 's.e. over passages', 'EM %', 'ms / passage (median)', 'forgetting (Δ NLL)', 'edit norm', 'seeds'], rows),
    '',
  ].join('\n');
}

/** Up to `n` rows spread evenly over the run, always with the first and the last. */
function spread<T>(rows: readonly T[], n: number): T[] {
  if (rows.length <= n) return [...rows];
  return Array.from({ length: n }, (_, i) => rows[Math.round((i * (rows.length - 1)) / (n - 1))]!);
}

function trainingSection(rows: readonly TrainingRow[]): string {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => k !== 'iteration' && rows.some((r) => typeof r[k] === 'number'));
  const cell = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : '');
  return [
    '## SEAL training',
    '',
    `${rows.length} iterations (${rows[0]!.iteration} to ${rows.at(-1)!.iteration}).`,
    '',
    mdTable(['iteration', ...keys], spread(rows, 12).map((r) => [String(r.iteration), ...keys.map((k) => cell(r[k]))])),
    '',
  ].join('\n');
}

type Renderer = (svg: string) => Uint8Array;

/** SVG → PNG when @resvg/resvg-js loads, else the reason it did not. */
export async function pngRenderer(): Promise<Renderer | string> {
  const name = '@resvg/resvg-js';
  try {
    type Resvg = new (svg: string, o: object) => { render(): { asPng(): Uint8Array } };
    const { Resvg } = (await import(name)) as { Resvg: Resvg };
    return (svg) => new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  } catch {
    return `PNGs not written: ${name} is not installed (npm install ${name}); the SVGs are complete.`;
  }
}

/** Writes a chart's SVG, and its PNG where a renderer loaded; returns the paths written. */
export async function writeChart(dir: string, c: Chart, render: Renderer | string): Promise<string[]> {
  const written = [join(dir, c.file)];
  await writeFileAtomic(written[0]!, c.svg);
  if (typeof render === 'function') {
    written.push(join(dir, c.file.replace(/\.svg$/, '.png')));
    await writeFileAtomic(written[1]!, render(c.svg));
  }
  return written;
}

/** A chart's place in report.md: the image and its caption. */
export const chartMarkdown = (c: Chart): string => `![${c.caption}](${c.file})\n\n*${c.caption}*\n`;

/** Writes report.md and its charts into `dir` (created if missing). */
export async function writeReport(dir: string, input: ReportInput, opts: { png?: boolean } = {}): Promise<WrittenReport> {
  const { evalResult: r, metrics } = input;
  if (!r && !metrics?.length) throw new RangeError('writeReport: nothing to report (no evaluation result and no training metrics)');
  await mkdir(dir, { recursive: true });
  const sections: [string, Chart[]][] = [];
  if (metrics?.length) sections.push([trainingSection(metrics), [rewardChart(metrics)]]);
  if (r) sections.push([evalSection(r), methodCharts(r)]);
  const render = opts.png === false ? 'PNGs not requested.' : await pngRenderer();
  const files = [join(dir, 'report.md')];
  const md = [`# ${input.title ?? 'SEAL report'}`, ''];
  for (const [text, charts] of sections) {
    md.push(text);
    for (const c of charts) {
      files.push(...(await writeChart(dir, c, render)));
      md.push(chartMarkdown(c));
    }
  }
  if (typeof render === 'string') md.push(`_${render}_`, '');
  await writeFileAtomic(files[0]!, md.join('\n'));
  return { files, ...(typeof render === 'string' ? { pngNote: render } : {}) };
}
