// The text variant's report (SEAL variant B): the method table like the paper's, a bar chart of
// answer NLL per method (mean ± std over seeds), the ReST-EM rounds, the continual experiment's
// forgetting matrix as a heatmap, and example self-edits.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import type { ContinualResult, MethodResult } from '../seal/text/evaluate.ts';
import { chartMarkdown, pngRenderer, writeChart } from './report.ts';
import { barChart, heatmap } from './svg.ts';

export interface RoundRow {
  round: number;
  meanReward: number;
  used: number;
  samples: number;
  loss: number;
  seconds: number;
}

export interface TextReportInput {
  title: string;
  /** What was run, one line. */
  setup: string;
  methods: readonly MethodResult[];
  rounds: readonly RoundRow[];
  continual?: { method: string; result: ContinualResult };
}

const stats = (xs: readonly number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { m, sd };
};
const pm = (xs: readonly number[], scale = 1, digits = 3) => {
  const { m, sd } = stats(xs);
  return xs.length > 1 ? `${(m * scale).toFixed(digits)} ± ${(sd * scale).toFixed(digits)}` : (m * scale).toFixed(digits);
};

/** The method table in markdown: answer NLL and EM % (mean ± std over seeds), time per passage. */
export function methodTable(methods: readonly MethodResult[]): string {
  const rows = methods.map((r) => `| ${r.name} | ${pm(r.nll)} | ${pm(r.em, 100, 1)} | ${Math.round(r.msPerPassage)} |`);
  return ['| training data for the update | answer NLL | EM % | ms / passage |', '| --- | ---: | ---: | ---: |', ...rows].join('\n');
}

export function roundTable(rounds: readonly RoundRow[]): string {
  const rows = rounds.map((r) => `| ${r.round} | ${r.meanReward.toFixed(3)} | ${r.used} / ${r.samples} | ${Number.isFinite(r.loss) ? r.loss.toFixed(3) : '—'} | ${r.seconds.toFixed(0)} |`);
  return ['| round | mean reward of its samples | kept / sampled | generator loss | s |', '| ---: | ---: | ---: | ---: | ---: |', ...rows].join('\n');
}

export async function writeTextReport(dir: string, r: TextReportInput): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const charts: { file: string; caption: string; svg: string }[] = [
    {
      file: 'methods-nll.svg',
      caption: 'Answer NLL after each update, no passage in context (lower is better; mean ± std over seeds)',
      svg: barChart({
        title: 'Knowledge incorporation: answer NLL by training data',
        yLabel: 'answer NLL',
        bars: r.methods.map((m) => ({ label: m.name, value: stats(m.nll).m, error: stats(m.nll).sd })),
      }),
    },
  ];
  if (r.continual) {
    const n = r.continual.result.em.length;
    const labels = Array.from({ length: n }, (_, i) => String(i + 1));
    charts.push({
      file: 'forgetting-matrix.svg',
      caption: `Continual self-edits (${r.continual.method}): exact match on passage j (column) after the updates of passages 1..i (row)`,
      svg: heatmap({
        title: 'Forgetting matrix: EM on earlier passages after each update',
        subtitle: r.continual.method,
        xLabel: 'passage evaluated',
        yLabel: 'after updating on passages 1..i',
        rows: labels,
        cols: labels,
        values: r.continual.result.em,
        lo: 0,
        hi: 1,
      }),
    });
  }
  const render = await pngRenderer();
  const files = [join(dir, 'report.md')];
  const md = [`# ${r.title}`, '', r.setup, '', '## Methods', '', methodTable(r.methods), ''];
  if (r.rounds.length) md.push('## ReST-EM rounds', '', roundTable(r.rounds), '');
  for (const c of charts) {
    files.push(...(await writeChart(dir, c, render)));
    md.push(chartMarkdown(c));
  }
  if (r.continual) {
    md.push('## Continual experiment (answer NLL)', '', '| after \\ passage | ' + r.continual.result.nll.map((_, j) => j + 1).join(' | ') + ' |', '| --- |' + ' ---: |'.repeat(r.continual.result.nll.length));
    r.continual.result.nll.forEach((row, i) => md.push(`| ${i + 1} | ${row.map((v) => (Number.isFinite(v) ? v.toFixed(2) : '')).join(' | ')} |`));
    md.push('');
  }
  const withExamples = r.methods.filter((m) => m.examples.length);
  if (withExamples.length) {
    md.push('## Example self-edits (first passage, first seed)', '');
    for (const m of withExamples) md.push(`**${m.name}**`, '', '```', m.examples[0]!.trimEnd(), '```', '');
  }
  if (typeof render === 'string') md.push(`_${render}_`, '');
  await writeFileAtomic(files[0]!, md.join('\n'));
  return files;
}
