// `seal tune`: the baselines' hyper-parameters, chosen on the validation split (never on held-out):
// the size of the fixed gradient and sign steps by a sweep, the finetunes' learning rate and step
// count over a grid. `seal eval --tuned FILE` and the demo read the result.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { loadModel } from '../model/load.ts';
import { mlpMask } from '../model/mask.ts';
import type { LanguageModel } from '../model/lm.ts';
import { fixedStepRule } from '../seal/adapt.ts';
import { resolveConfig, type DirectionKind, type SealConfig } from '../seal/config.ts';
import { passageFeatures, type PassageFeatures } from '../seal/features.ts';
import { QAScorer } from '../seal/reward.ts';
import { EditWriter, editSpace, inGroups } from '../seal/task.ts';
import { mean } from '../tasks/qa.ts';
import { loadSquad, type Passage } from '../tasks/squad.ts';
import { DEFAULT_FINETUNE_GRID, tuneFinetune, tuneScalar, type FinetuneGrid, type FinetuneTuning, type ScalarTuning } from '../tasks/tune.ts';
import { UserError } from '../util/errors.ts';

/** What `seal tune` writes. */
export interface Tuned {
  split: string;
  passages: string[];
  mask: string[];
  fixed: Partial<Record<DirectionKind, ScalarTuning>>;
  finetune: Partial<Record<'mask' | 'full', FinetuneTuning>>;
}

export const TUNABLE = ['fixed-step', 'fixed-sign', 'finetune-mask', 'finetune-full'] as const;
export const DEFAULT_STEP_SIZES = [0.5, 1, 2, 3, 4, 6, 8, 12];

export interface TuneOptions {
  model: string;
  dataDir: string;
  split: string;
  passages: number;
  mask?: string;
  methods: string;
  stepSizes: string;
  lrs: string;
  steps: string;
  out: string;
}

const numbers = (s: string, what: string) => {
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (!xs.length || !xs.every(Number.isFinite)) throw new UserError(`${what}: expected comma-separated numbers, got '${s}'`);
  return xs;
};

export function readTuned(path: string): Tuned {
  if (!existsSync(path)) throw new UserError(`tuned hyper-parameters ${path} not found: make them with \`seal tune --out ${path}\``);
  return JSON.parse(readFileSync(path, 'utf8')) as Tuned;
}

/**
 * Sweeps a fixed step's size along the whole mask's `kind` direction. Each passage's features (one
 * forward and backward) are computed once and serve every size, and a passage's sizes are scored
 * together, as variants of one pass (QAScorer); `onDone` follows the passages.
 */
export async function tuneFixedStep(model: LanguageModel, tok: Tokenizer, config: SealConfig, passages: readonly Passage[], kind: DirectionKind, sizes: readonly number[], onDone?: () => void): Promise<ScalarTuning> {
  const { mask, layer, spec } = editSpace(model, config);
  const writer = new EditWriter(model, mask, spec);
  const scorer = new QAScorer(model, tok, passages, mask.entries.map((e) => e.name));
  const features: PassageFeatures[] = [];
  try {
    for (const p of passages) features.push(await passageFeatures(model, tok, p.context, layer, mask, spec));
    return await tuneScalar(sizes, async (values) => {
      // nll[v][i]: size v's mean answer NLL on passage i.
      const nll = values.map(() => new Array<number>(passages.length));
      for (const [i, f] of features.entries()) {
        const coefs = values.map((s) => fixedStepRule(spec, kind, s)(f));
        const most = Math.max(1, Math.min(writer.maxCopies, scorer.fit(i)));
        const scores = await scorer.score(model.gpu, inGroups(coefs, most).map((part) => ({ p: i, variants: part.length, overrides: () => writer.edits([f], part) })));
        scores.forEach((s, v) => (nll[v]![i] = mean(Array.from(s.items))));
        onDone?.();
      }
      return nll.map(mean);
    });
  } finally {
    for (const f of features) f.release();
    scorer.release();
    writer.release();
  }
}

export async function tuneCommand(dev: DawnOptions, o: TuneOptions): Promise<void> {
  const methods = o.methods.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = methods.filter((m) => !(TUNABLE as readonly string[]).includes(m));
  if (unknown.length) throw new UserError(`seal tune: cannot tune ${unknown.join(', ')} (tunable: ${TUNABLE.join(', ')})`);
  const sizes = numbers(o.stepSizes, '--step-sizes');
  const grid: FinetuneGrid = { lr: numbers(o.lrs, '--lrs'), steps: numbers(o.steps, '--steps') };
  const splitFile = o.split.endsWith('.json') ? o.split : join(o.dataDir, `${o.split}.json`);
  const passages = (await loadSquad(splitFile)).slice(0, o.passages);
  const gpu = await dawnGpu(dev);
  const bar = new SingleBar({ format: 'tune |{bar}| {value}/{total} | {what} | ETA {eta_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 15_000 }, Presets.shades_classic);
  try {
    const { model, tokenizer: tok } = await loadModel(gpu, o.model);
    const config = resolveConfig({ model: o.model, mask: { tensors: o.mask ? o.mask.split(',').map((s) => s.trim()) : mlpMask(model.kind) }, directions: ['grad', 'sign'] });
    const { mask } = editSpace(model, config);
    const tuned: Tuned = { split: o.split, passages: passages.map((p) => p.id), mask: config.mask.tensors, fixed: {}, finetune: {} };
    for (const m of methods) {
      if (m === 'fixed-step' || m === 'fixed-sign') {
        const kind = m === 'fixed-step' ? 'grad' : 'sign';
        let done = 0;
        bar.start(passages.length, 0, { what: m });
        tuned.fixed[kind] = await tuneFixedStep(model, tok, config, passages, kind, sizes, () => bar.update(++done));
        bar.stop();
        console.log(`${m}: size ${tuned.fixed[kind].best.value} (validation NLL ${tuned.fixed[kind].best.nll.toFixed(3)}; sizes ${sizes.join(', ')})`);
      } else {
        const scope = m === 'finetune-mask' ? 'mask' : 'full';
        bar.start(passages.length * grid.lr.length, 0, { what: m });
        const t = await tuneFinetune(model, tok, passages, scope === 'mask' ? mask : 'full', grid, (d) => bar.update(d));
        bar.stop();
        tuned.finetune[scope] = t;
        console.log(`${m}: lr ${t.best.lr}, ${t.best.steps} steps (validation NLL ${t.best.nll.toFixed(3)}; lr ${grid.lr.join(', ')} × steps ${grid.steps.join(', ')})`);
      }
    }
    await writeFileAtomic(o.out, JSON.stringify(tuned, null, 2) + '\n');
    console.log(`wrote ${o.out}`);
    model.release();
  } finally {
    bar.stop();
    gpu.destroy();
  }
}

export const TUNE_DEFAULTS = {
  stepSizes: DEFAULT_STEP_SIZES.join(','),
  lrs: DEFAULT_FINETUNE_GRID.lr.join(','),
  steps: DEFAULT_FINETUNE_GRID.steps.join(','),
};
