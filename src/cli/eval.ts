// `seal eval`: the knowledge-incorporation evaluation of a base model on a split — no edit, passage in
// context, finetune on the passage (masked and full), random edit — as a table, JSON, or a report.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import type { DeviceOptions } from '../gpu/device.ts';
import { Gpu } from '../gpu/gpu.ts';
import { loadModel } from '../model/load.ts';
import { writeReport, type TrainingRow } from '../report/report.ts';
import { parseRange, resolveMask, type Mask } from '../seal/mask.ts';
import { Adapter } from '../seal/adapt.ts';
import { adapterMethod, baseMethod, evaluate, formatTable, inContextMethod, matchNorm, pickMethods, randomEditMethod, type Method, type NormFor } from '../tasks/eval.ts';
import { finetuneMethod } from '../tasks/finetune.ts';
import { ForgettingProbe, loadGeneralText } from '../tasks/forgetting.ts';
import { SquadError, loadSquad, type Passage } from '../tasks/squad.ts';

export interface EvalCliOptions {
  model: string;
  split: string;
  dataDir: string;
  methods: string;
  mask: string;
  /** START:END */
  maskRows?: string;
  maskCols?: string;
  finetuneSteps: number;
  finetuneLr: number;
  /** A fixed norm, or the name of a method whose per-passage norm the random edit takes. */
  randomNorm: string;
  seeds: number;
  passages?: number;
  general: number;
  maxNew: number;
  json?: boolean;
  report?: string;
  metrics?: string;
  /** policy.safetensors of a `seal train` run: adds the 'seal' method. */
  policy?: string;
}

/** A clear error for a missing file, with what makes it. */
function needFile(path: string, what: string, howToMake: string): void {
  if (!existsSync(path)) throw new EvalInputError(`${what} ${path} does not exist; ${howToMake}`);
}

export class EvalInputError extends Error {
  override name = 'EvalInputError';
}

/** metrics.jsonl of a training run (one JSON object per line), for the report's training section. */
async function readMetrics(path: string): Promise<TrainingRow[]> {
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim());
  return lines.map((l, i) => {
    const row = JSON.parse(l) as TrainingRow;
    if (typeof row.iteration !== 'number' || typeof row.rewardMean !== 'number') throw new EvalInputError(`${path}:${i + 1}: a metrics row needs numeric iteration and rewardMean`);
    return row;
  });
}

/**
 * The methods `--methods` may name. `--random-norm` is a number or the editing method whose norm
 * the random edit takes per passage (that method must run first, as evaluate's order does).
 */
function availableMethods(o: EvalCliOptions, build: { finetune: (scope: Mask | 'full') => Method; random: (norm: NormFor) => Method; mask: Mask; seal?: () => Method }) {
  const fixed = Number(o.randomNorm);
  const matchable = ['finetune-mask', 'finetune-full', ...(build.seal ? ['seal'] : [])];
  if (!Number.isFinite(fixed) && !matchable.includes(o.randomNorm)) {
    throw new EvalInputError(`--random-norm must be a number or one of ${matchable.join(', ')}; got '${o.randomNorm}'`);
  }
  let matched: ReturnType<typeof matchNorm> | undefined;
  const matching = (name: string, make: () => Method) => () => {
    const method = make();
    if (name !== o.randomNorm) return method;
    matched = matchNorm(method);
    return matched.method;
  };
  const finetune = (name: string, scope: Mask | 'full') => matching(name, () => build.finetune(scope));
  const matchedNorm = (p: Passage) => {
    if (!matched) throw new EvalInputError(`--random-norm ${o.randomNorm}: add ${o.randomNorm} to --methods, before random`);
    return matched.norm(p);
  };
  return new Map<string, () => Method>([
    ['base', () => baseMethod],
    ['in-context', () => inContextMethod],
    ['finetune-mask', finetune('finetune-mask', build.mask)],
    ['finetune-full', finetune('finetune-full', 'full')],
    ['random', () => build.random(Number.isFinite(fixed) ? fixed : matchedNorm)],
    ...(build.seal ? [['seal', matching('seal', build.seal)] as const] : []),
  ]);
}

/** Runs the evaluation; input errors (missing files, bad mask or method names) print one line and exit 2. */
export async function evalCommand(dev: DeviceOptions, o: EvalCliOptions): Promise<void> {
  try {
    await runEval(dev, o);
  } catch (e) {
    if (!(e instanceof EvalInputError || e instanceof RangeError || e instanceof SquadError)) throw e;
    console.error(`seal eval: ${e.message}`);
    process.exitCode = 2;
  }
}

export async function runEval(dev: DeviceOptions, o: EvalCliOptions): Promise<void> {
  if (o.policy) needFile(o.policy, 'SEAL policy', 'train one with `seal train` (it writes <run>/policy.safetensors)');
  needFile(o.model, 'base model', 'make one with `seal pretrain --out data/base.safetensors` (or pass --model <checkpoint>)');
  const splitFile = o.split.endsWith('.json') ? o.split : join(o.dataDir, `${o.split}.json`);
  needFile(splitFile, 'split', 'pass --split held-out | rl-train | pretrain, or a SQuAD JSON file');
  const generalFile = join(o.dataDir, 'general.txt');
  needFile(generalFile, 'general text', 'it ships in data/knowledge/');
  const passages = (await loadSquad(splitFile)).slice(0, o.passages);
  const general = await loadGeneralText(generalFile, o.general);
  const metrics = o.metrics ? await readMetrics(o.metrics) : undefined;
  const names = o.methods.split(',').map((s) => s.trim()).filter(Boolean);

  const gpu = await Gpu.create(dev);
  const bar = new SingleBar({ format: 'eval |{bar}| {value}/{total} runs | {what} | ETA {eta_formatted}', hideCursor: true, noTTYOutput: !o.json, notTTYSchedule: 15_000 }, Presets.shades_classic);
  try {
    const { model, tokenizer: tok } = await loadModel(gpu, o.model);
    const shapes = new Map([...model.params].map(([k, t]) => [k, t.shape]));
    const mask = resolveMask(shapes, { tensors: o.mask.split(',').map((s) => s.trim()), ...(o.maskRows ? { rows: parseRange(o.maskRows) } : {}), ...(o.maskCols ? { cols: parseRange(o.maskCols) } : {}) });
    const adapter = o.policy ? await Adapter.load(gpu, model, tok, o.policy) : undefined;
    const available = availableMethods(o, {
      mask,
      ...(adapter ? { seal: () => adapterMethod('seal', adapter) } : {}),
      finetune: (scope) => finetuneMethod(model, tok, scope, { steps: o.finetuneSteps, lr: o.finetuneLr }),
      random: (norm) => randomEditMethod(model, mask.entries, norm),
    });
    const methods = pickMethods(names, available);
    const forgetting = await ForgettingProbe.create(model, tok, general);
    let started = false;
    const result = await evaluate(model, tok, passages, methods, {
      forgetting,
      split: o.split,
      seeds: Array.from({ length: o.seeds }, (_, i) => i + 1),
      maxNew: o.maxNew,
      onProgress: (done, total, what) => {
        if (!started) bar.start(total, 0, { what });
        started = true;
        bar.update(done, { what });
      },
    });
    bar.stop();
    if (o.json) console.log(JSON.stringify({ model: o.model, mask: mask.spec, maskParams: mask.paramDim, finetune: { steps: o.finetuneSteps, lr: o.finetuneLr }, ...result }, null, 2));
    else console.log(formatTable(result));
    if (o.report) {
      const written = await writeReport(o.report, { title: `SEAL evaluation: ${o.model}`, evalResult: result, ...(metrics ? { metrics } : {}) });
      if (written.pngNote) console.error(written.pngNote);
      console.error(`wrote ${written.files.join(', ')}`);
    }
    adapter?.release();
    model.release();
  } finally {
    bar.stop();
    gpu.destroy();
  }
}
