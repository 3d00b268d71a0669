// `seal compare`: one table from several `seal eval --json` results on the same passages — e.g. the
// baselines once, and a trained generator per training seed — with each row's paired per-passage
// difference against a reference method. A row given by several files (one per training seed) is
// reported as mean ± std over those seeds; its paired difference uses the seed-averaged NLL of each
// passage, and the standard error is over passages.
import { readFileSync } from 'node:fs';
import { mean } from '../tasks/qa.ts';
import type { EvalResult, RunRecord } from '../tasks/eval.ts';
import { UserError } from '../util/errors.ts';

export interface CompareOptions {
  /** `label=file[,file…]` or `file` (every method in it, under its own name). */
  inputs: string[];
  /** The method every row is paired against. */
  against: string;
  json?: boolean;
}

interface Row {
  label: string;
  /** Per training seed (file): its runs of this method. */
  perSeed: RunRecord[][];
}

const sd = (xs: readonly number[]) => {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
};

function readResult(file: string): EvalResult {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as EvalResult;
    if (!Array.isArray(r.runs)) throw new Error('no runs');
    return r;
  } catch (e) {
    throw new UserError(`${file}: not a \`seal eval --json\` result (${(e as Error).message})`);
  }
}

/** Rows from the inputs: `label=f1,f2` → method `label`'s runs, one file per seed; `file` → every method in it. */
function rows(inputs: readonly string[]): Row[] {
  const out: Row[] = [];
  for (const input of inputs) {
    const eq = input.indexOf('=');
    if (eq < 0) {
      const r = readResult(input);
      for (const m of r.methods) out.push({ label: m.name, perSeed: [r.runs.filter((x) => x.method === m.name)] });
      continue;
    }
    const [label, method] = input.slice(0, eq).split(':') as [string, string | undefined];
    const files = input.slice(eq + 1).split(',');
    const perSeed = files.map((f) => {
      const runs = readResult(f).runs.filter((x) => x.method === (method ?? label));
      if (!runs.length) throw new UserError(`${f}: no runs of method '${method ?? label}' (name it as label:method=files)`);
      return runs;
    });
    out.push({ label, perSeed });
  }
  return out;
}

/** Per passage: the mean over seeds (and over eval seeds within a file) of a run field. */
function perPassage(row: Row, f: (r: RunRecord) => number): Map<string, number> {
  const ids = [...new Set(row.perSeed.flat().map((r) => r.passage))];
  return new Map(ids.map((id) => [id, mean(row.perSeed.map((runs) => mean(runs.filter((r) => r.passage === id).map(f))))]));
}

export interface CompareRow {
  label: string;
  seeds: number;
  nll: { mean: number; std: number };
  nllSe: number;
  em: { mean: number; std: number };
  msPerPassage: number;
  forgetting: number;
  editNorm: number;
  /** Mean over passages of (this − reference) seed-averaged NLL, with its standard error. */
  paired?: { mean: number; se: number; n: number };
}

export function compare(inputs: readonly string[], against: string): CompareRow[] {
  const all = rows(inputs);
  const ref = all.find((r) => r.label === against);
  if (!ref) throw new UserError(`--against ${against}: no such row (rows: ${all.map((r) => r.label).join(', ')})`);
  const refNll = perPassage(ref, (r) => r.nll);
  return all.map((row) => {
    const seedMeans = (f: (r: RunRecord) => number) => row.perSeed.map((runs) => mean(runs.map(f)));
    const nll = perPassage(row, (r) => r.nll);
    const diffs = [...nll].filter(([id]) => refNll.has(id)).map(([id, v]) => v - refNll.get(id)!);
    const ms = row.perSeed.flat().map((r) => r.ms).sort((a, b) => a - b);
    const out: CompareRow = {
      label: row.label,
      seeds: row.perSeed.length,
      nll: { mean: mean(seedMeans((r) => r.nll)), std: sd(seedMeans((r) => r.nll)) },
      nllSe: sd([...nll.values()]) / Math.sqrt(nll.size),
      em: { mean: mean(seedMeans((r) => r.em)), std: sd(seedMeans((r) => r.em)) },
      msPerPassage: ms[ms.length >> 1]!,
      forgetting: mean(seedMeans((r) => r.forgetting)),
      editNorm: mean(seedMeans((r) => r.editNorm)),
    };
    if (row !== ref && diffs.length) out.paired = { mean: mean(diffs), se: sd(diffs) / Math.sqrt(diffs.length), n: diffs.length };
    return out;
  });
}

export function formatCompare(rs: readonly CompareRow[], against: string): string {
  const pm = (s: { mean: number; std: number }, d: number, k = 1) => `${(k * s.mean).toFixed(d)}${s.std ? ` ± ${(k * s.std).toFixed(d)}` : ''}`;
  const head = ['method', 'seeds', 'answer NLL', 's.e.', `paired Δ vs ${against} (± s.e.)`, 'EM %', 'ms / passage', 'forgetting', 'edit norm'];
  const body = rs.map((r) => [
    r.label,
    String(r.seeds),
    pm(r.nll, 3),
    r.nllSe.toFixed(3),
    r.paired ? `${r.paired.mean >= 0 ? '+' : '−'}${Math.abs(r.paired.mean).toFixed(3)} ± ${r.paired.se.toFixed(3)}` : '—',
    pm(r.em, 1, 100),
    r.msPerPassage.toFixed(0),
    r.forgetting.toFixed(3),
    r.editNorm.toFixed(2),
  ]);
  return [`| ${head.join(' | ')} |`, `| --- |${' ---: |'.repeat(head.length - 1)}`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n');
}

export function compareCommand(o: CompareOptions): void {
  const rs = compare(o.inputs, o.against);
  console.log(o.json ? JSON.stringify(rs, null, 2) : formatCompare(rs, o.against));
}
