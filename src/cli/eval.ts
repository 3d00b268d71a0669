// `seal eval`: the knowledge-incorporation evaluation of a base model on a split — no edit, passage in
// context, fixed gradient and sign steps, finetune on the passage (masked and full), the untrained
// and the trained SEAL generator, random edit — as a table, JSON, or a report. Baselines take their
// hyper-parameters from `seal tune` (chosen on validation) via --tuned.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { loadModel } from '../model/load.ts';
import { INFERENCE, type ModelUse } from '../model/memory.ts';
import { mlpMask, parseRange, resolveMask, type Mask } from '../model/mask.ts';
import { writeReport, type TrainingRow } from '../report/report.ts';
import { Adapter } from '../seal/adapt.ts';
import { resolveConfig, type DirectionKind } from '../seal/config.ts';
import { readTuned } from './tune.ts';
import { adapterMethod, baseMethod, evaluate, formatTable, inContextMethod, matchNorm, pickMethods, randomEditMethod, type Method, type NormFor } from '../tasks/eval.ts';
import { finetuneMethod } from '../tasks/finetune.ts';
import { ForgettingProbe, loadGeneralText } from '../tasks/forgetting.ts';
import { loadSquad, type Passage } from '../tasks/squad.ts';
import { UserError } from '../util/errors.ts';

export interface EvalCliOptions {
  model: string;
  split: string;
  dataDir: string;
  methods: string;
  mask?: string;
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
  /** `seal tune`'s output: step sizes and finetune settings chosen on validation. */
  tuned?: string;
  /** Size of the fixed steps when there is no --tuned. */
  stepSize?: number;
}

/** A clear error for a missing file, with what makes it. */
function needFile(path: string, what: string, howToMake: string): void {
  if (!existsSync(path)) throw new EvalInputError(`${what} ${path} does not exist; ${howToMake}`);
}

export class EvalInputError extends UserError {
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
interface Builders {
  finetune: (scope: Mask | 'full') => Method;
  random: (norm: NormFor) => Method;
  mask: Mask;
  /** Methods made from an inference-time adapter: fixed steps and the generators. */
  adapters: Map<string, () => Method>;
}

function availableMethods(o: EvalCliOptions, build: Builders) {
  const fixed = Number(o.randomNorm);
  const matchable = ['finetune-mask', 'finetune-full', ...build.adapters.keys()];
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
    ...[...build.adapters].map(([name, make]) => [name, matching(name, make)] as const),
  ]);
}

function formatSettings(s: { finetuneMask: { steps: number; lr: number }; finetuneFull: { steps: number; lr: number }; fixedStep?: number; fixedSign?: number; tunedOn?: string }): string {
  const ft = (x: { steps: number; lr: number }) => `lr ${x.lr}, ${x.steps} steps`;
  const parts = [`finetune-mask ${ft(s.finetuneMask)}`, `finetune-full ${ft(s.finetuneFull)}`];
  if (s.fixedStep !== undefined) parts.push(`fixed-step size ${s.fixedStep}`);
  if (s.fixedSign !== undefined) parts.push(`fixed-sign size ${s.fixedSign}`);
  return `settings${s.tunedOn ? ` (chosen on ${s.tunedOn})` : ''}: ${parts.join('; ')}`;
}

export async function runEval(dev: DawnOptions, o: EvalCliOptions): Promise<void> {
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

  const gpu = await dawnGpu(dev);
  const bar = new SingleBar({ format: 'eval |{bar}| {value}/{total} runs | {what} | ETA {eta_formatted}', hideCursor: true, noTTYOutput: !o.json, notTTYSchedule: 15_000 }, Presets.shades_classic);
  try {
    // Finetuning the full model keeps AdamW's moments; every other edit needs a full backward.
    const train: ModelUse['train'] = names.includes('finetune-full') ? 'adam' : names.some((n) => n !== 'base' && n !== 'in-context') ? 'grads' : 'none';
    const { model, tokenizer: tok } = await loadModel(gpu, o.model, { use: { ...INFERENCE, train } });
    const shapes = new Map([...model.params].map(([k, t]) => [k, t.shape]));
    const maskSpec = { tensors: o.mask ? o.mask.split(',').map((s) => s.trim()) : mlpMask(model.kind), ...(o.maskRows ? { rows: parseRange(o.maskRows) } : {}), ...(o.maskCols ? { cols: parseRange(o.maskCols) } : {}) };
    const tuned = o.tuned ? readTuned(o.tuned) : undefined;
    // Adapters are made when a method is picked, and released with the model.
    const adapters: Adapter[] = [];
    const keep = (a: Adapter) => (adapters.push(a), a);
    const seal = o.policy ? keep(await Adapter.load(gpu, model, tok, o.policy)) : undefined;
    const config = seal?.config ?? resolveConfig({ model: o.model, mask: maskSpec });
    // One mask for every method that edits: the policy's when there is one, as --help says.
    const mask = resolveMask(shapes, config.mask);
    // A fixed step uses only the base gradient: no lookahead pass to pay for.
    const fixedConfig = { ...config, lookahead: 0 };
    const stepSize = (kind: DirectionKind, method: string) => {
      const v = tuned?.fixed[kind]?.best.value ?? o.stepSize;
      if (v === undefined) throw new EvalInputError(`${method} needs a step size: pass --tuned FILE (from \`seal tune\`) or --step-size X`);
      return v;
    };
    const finetuneSettings = (scope: 'mask' | 'full') => {
      const best = tuned?.finetune[scope]?.best;
      return best ? { steps: best.steps, lr: best.lr } : { steps: o.finetuneSteps, lr: o.finetuneLr };
    };
    const available = availableMethods(o, {
      mask,
      adapters: new Map([
        ['fixed-step', () => adapterMethod('fixed-step', keep(Adapter.fixedStep(model, tok, fixedConfig, 'grad', stepSize('grad', 'fixed-step'))))],
        ['fixed-sign', () => adapterMethod('fixed-sign', keep(Adapter.fixedStep(model, tok, fixedConfig, 'sign', stepSize('sign', 'fixed-sign'))))],
        ['generator-init', () => adapterMethod('generator-init', keep(Adapter.withGenerator(model, tok, config)))],
        ...(seal ? [['seal', () => adapterMethod('seal', seal)] as const] : []),
      ]),
      finetune: (scope) => finetuneMethod(model, tok, scope, finetuneSettings(scope === 'full' ? 'full' : 'mask')),
      random: (norm) => randomEditMethod(model, mask.entries, norm),
    });
    const methods = pickMethods(names, available);
    const settings = {
      finetuneMask: finetuneSettings('mask'),
      finetuneFull: finetuneSettings('full'),
      ...(names.includes('fixed-step') ? { fixedStep: stepSize('grad', 'fixed-step') } : {}),
      ...(names.includes('fixed-sign') ? { fixedSign: stepSize('sign', 'fixed-sign') } : {}),
      ...(o.tuned ? { tunedOn: tuned!.split, tunedFile: o.tuned } : {}),
    };
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
    if (o.json) console.log(JSON.stringify({ model: o.model, mask: mask.spec, maskParams: mask.paramDim, settings, ...result, peakGpuBytes: gpu.peakBytes }, null, 2));
    else console.log(`${formatTable(result)}\n${formatSettings(settings)}`);
    if (o.report) {
      const written = await writeReport(o.report, { title: `SEAL evaluation: ${o.model}`, evalResult: result, ...(metrics ? { metrics } : {}) });
      if (written.pngNote) console.error(written.pngNote);
      console.error(`wrote ${written.files.join(', ')}`);
    }
    for (const a of adapters) a.release();
    forgetting.release();
    model.release();
  } finally {
    bar.stop();
    gpu.destroy();
  }
}
