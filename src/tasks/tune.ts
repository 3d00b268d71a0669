// Hyper-parameters of the baselines, chosen on the validation split so that a comparison with SEAL
// (whose step size is learned) tunes both sides. The score is what evaluation reports: the mean
// answer NLL of a passage's questions with no passage in context, averaged over passages. Results
// are plain numbers and arrays, written as JSON next to evaluation results.
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel } from '../model/lm.ts';
import type { Mask } from '../model/mask.ts';
import { DEFAULT_FINETUNE, finetunePassage, scopeMask } from './finetune.ts';
import { answerNll, mean } from './qa.ts';
import type { Passage } from './squad.ts';

export interface FinetuneGrid {
  lr: number[];
  steps: number[];
}

export const DEFAULT_FINETUNE_GRID: FinetuneGrid = { lr: [3e-4, 1e-3, 3e-3, 1e-2], steps: [5, 10, 20] };

export interface FinetuneCell {
  lr: number;
  steps: number;
  /** Mean over passages of the passage's mean answer NLL. */
  nll: number;
}

export interface FinetuneTuning {
  scope: 'mask' | 'full';
  grid: FinetuneGrid;
  /** The passages scored, by id. */
  passages: string[];
  /** Every grid cell, lr-major in the grid's order. */
  cells: FinetuneCell[];
  /** Lowest NLL; ties go to fewer steps, then to the earlier lr. */
  best: FinetuneCell;
  ms: number;
}

export interface ScalarTuning {
  results: { value: number; nll: number }[];
  /** Lowest NLL; ties go to the earlier value. */
  best: { value: number; nll: number };
  ms: number;
}

/** The first lowest-NLL entry; a NaN NLL (a diverged setting) never wins. */
function lowest<T extends { nll: number }>(xs: readonly T[]): T {
  const ok = xs.filter((x) => !Number.isNaN(x.nll));
  if (ok.length === 0) throw new RangeError('tune: every setting scored NaN');
  return ok.reduce((a, b) => (b.nll < a.nll ? b : a));
}

function checkGrid({ lr, steps }: FinetuneGrid): void {
  if (lr.length === 0 || steps.length === 0) throw new RangeError(`tune: the grid needs at least one lr and one step count, got ${lr.length} and ${steps.length}`);
  const badLr = lr.find((x) => !(x > 0 && Number.isFinite(x)));
  if (badLr !== undefined) throw new RangeError(`tune: every lr must be a positive number, got ${badLr}`);
  const badSteps = steps.find((k) => !(Number.isInteger(k) && k >= 1));
  if (badSteps !== undefined) throw new RangeError(`tune: every step count must be an integer ≥ 1, got ${badSteps}`);
  if (new Set(lr).size < lr.length || new Set(steps).size < steps.length) throw new RangeError('tune: the grid lists an lr or a step count twice');
}

/**
 * The finetune baseline over lr × steps. Per passage and lr, one run of the largest step count,
 * scored at each listed count on the way: a k-step run is the first k steps of a longer one (full
 * batch, no randomness). `onProgress(done, total)` counts those runs.
 */
export async function tuneFinetune(
  model: LanguageModel,
  tok: Tokenizer,
  passages: readonly Passage[],
  scope: Mask | 'full',
  grid: FinetuneGrid = DEFAULT_FINETUNE_GRID,
  onProgress?: (done: number, total: number) => void,
): Promise<FinetuneTuning> {
  checkGrid(grid);
  if (passages.length === 0) throw new RangeError('tune: no passages to score');
  const silent = passages.find((p) => p.questions.length === 0);
  if (silent) throw new RangeError(`tune: passage ${silent.id} has no questions to score`);
  const t0 = performance.now();
  const mask = scopeMask(model, scope);
  const maxSteps = Math.max(...grid.steps);
  // perPassage[l][s][p]: passage p's mean answer NLL after grid.steps[s] steps at grid.lr[l].
  const perPassage = grid.lr.map(() => grid.steps.map(() => new Array<number>(passages.length)));
  const total = passages.length * grid.lr.length;
  let done = 0;
  for (const [p, passage] of passages.entries()) {
    const items = passage.questions.map((q) => ({ question: q.question, answer: q.answers[0]! }));
    for (const [l, lr] of grid.lr.entries()) {
      const { overrides } = await finetunePassage(model, tok, passage.context, mask, { ...DEFAULT_FINETUNE, lr, steps: maxSteps }, async (step, overrides) => {
        const s = grid.steps.indexOf(step);
        if (s >= 0) perPassage[l]![s]![p] = mean(await answerNll(model, tok, items, { overrides }));
      });
      overrides.forEach((t) => t.release());
      onProgress?.(++done, total);
    }
  }
  const cells = grid.lr.flatMap((lr, l) => grid.steps.map((steps, s) => ({ lr, steps, nll: mean(perPassage[l]![s]!) })));
  // A stable sort by steps, so among equal NLLs the first is the one with fewer steps.
  const best = lowest([...cells].sort((a, b) => a.steps - b.steps));
  return { scope: scope === 'full' ? 'full' : 'mask', grid: { lr: [...grid.lr], steps: [...grid.steps] }, passages: passages.map((p) => p.id), cells, best, ms: performance.now() - t0 };
}

/**
 * A sweep of one scalar (e.g. a fixed step size): `score(values)` gives each value's validation NLL,
 * all at once, so a sweep may score the values of a passage as variants of one pass.
 */
export async function tuneScalar(values: readonly number[], score: (values: readonly number[]) => Promise<readonly number[]>): Promise<ScalarTuning> {
  if (values.length === 0) throw new RangeError('tune: no values to sweep');
  const bad = values.find((v) => !Number.isFinite(v));
  if (bad !== undefined) throw new RangeError(`tune: every value must be a finite number, got ${bad}`);
  const t0 = performance.now();
  const nll = await score(values);
  if (nll.length !== values.length) throw new Error(`tune: ${nll.length} scores for ${values.length} values`);
  const results: ScalarTuning['results'] = values.map((value, i) => ({ value, nll: nll[i]! }));
  return { results, best: lowest(results), ms: performance.now() - t0 };
}
