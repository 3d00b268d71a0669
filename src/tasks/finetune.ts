// The paper's baseline: finetune on the passage for k steps (AdamW, LM loss on the passage text),
// either only the masked parameters SEAL edits or the whole model. What is trained is a delta per
// edited tensor, θ' = θ + M⊙δ (src/ops/edit.ts): the forward runs on scratch copies base + δ, the
// full backward's gradient at each edited tensor is gathered at the mask into dδ, and AdamW updates
// δ only. So nothing outside the mask moves (not even by weight decay, which pulls δ towards the
// base), the base is only read, and ‖δ‖ is the edit norm.
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel } from '../model/lm.ts';
import { editBackward } from '../ops/edit.ts';
import { adamw, clipGradNorm } from '../ops/optimizer.ts';
import { resolveMask, type Mask } from '../model/mask.ts';
import { passageBatch } from './corpus.ts';
import { MaskedDelta, type Method } from './eval.ts';
import type { Passage } from './squad.ts';

export interface FinetuneOptions {
  steps: number;
  lr: number;
  /** AdamW's decoupled decay of δ, i.e. towards the base weights. */
  weightDecay: number;
  /** Global-norm clip of dδ; 0 for none. */
  gradClip: number;
}

export const DEFAULT_FINETUNE: FinetuneOptions = { steps: 10, lr: 1e-3, weightDecay: 0, gradClip: 1 };

/** The parameters a scope trains: the SEAL mask as given, or every tensor of the model, whole. */
export function scopeMask(model: LanguageModel, scope: Mask | 'full'): Mask {
  return scope === 'full' ? resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), { tensors: ['**'] }) : scope;
}

function checkOptions(o: FinetuneOptions): void {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new RangeError(`finetune: steps (k) must be an integer ≥ 1, got ${o.steps}`);
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) throw new RangeError(`finetune: lr must be a positive number, got ${o.lr}`);
  if (!(o.weightDecay >= 0) || !(o.gradClip >= 0)) throw new RangeError(`finetune: weightDecay and gradClip must be ≥ 0, got ${o.weightDecay}, ${o.gradClip}`);
}

/**
 * Called after each step with the weights it produced, θ_step. They are scratch tensors the next
 * step overwrites, so read them before returning (a returned promise is awaited first).
 */
export type StepVisitor = (step: number, overrides: ReadonlyMap<string, F32>) => void | Promise<void>;

/**
 * Finetunes `mask` on one passage text for o.steps steps; the returned overrides (θ_k) are the
 * caller's to release. `onStep` lets a sweep score every step count on the way to the largest.
 */
export async function finetunePassage(
  model: LanguageModel,
  tok: Tokenizer,
  text: string,
  mask: Mask,
  o: FinetuneOptions,
  onStep?: StepVisitor,
): Promise<{ overrides: Map<string, F32>; editNorm: number }> {
  checkOptions(o);
  const gpu = model.gpu;
  const b = passageBatch(tok, text, model.config.nCtx);
  const tokens = gpu.tensor(b.tokens, [b.B, b.T]);
  const targets = gpu.tensor(b.targets, [b.B, b.T]);
  const delta = new MaskedDelta(model, mask.entries);
  const zeros = () => mask.entries.map((e) => gpu.zeros([e.size]));
  const [dDelta, m, v] = [zeros(), zeros(), zeros()];
  // The backward writes every parameter's gradient; only the edited tensors' are read.
  const grads = model.zerosLike();
  const edited = mask.entries.map((e) => grads.get(e.name)!);
  let overrides: Map<string, F32> | undefined = delta.apply();
  try {
    for (let step = 1; step <= o.steps; step++) {
      for (const g of edited) gpu.clear(g);
      const pass = model.forward(tokens, targets, overrides);
      pass.backward(grads);
      pass.release();
      for (const d of dDelta) gpu.clear(d);
      edited.forEach((g, i) => editBackward(gpu, g, delta.edit(i), dDelta[i]));
      if (o.gradClip > 0) clipGradNorm(gpu, dDelta, o.gradClip).release();
      delta.deltas.forEach((d, i) => adamw(gpu, d, dDelta[i]!, m[i]!, v[i]!, step, { lr: o.lr, weightDecay: o.weightDecay }));
      overrides = delta.apply(overrides);
      await onStep?.(step, overrides);
    }
    const editNorm = await delta.norm();
    const final = overrides;
    overrides = undefined;
    return { overrides: final, editNorm };
  } finally {
    overrides?.forEach((t) => t.release());
    for (const t of [tokens, targets, ...dDelta, ...m, ...v, ...grads.values()]) t.release();
    delta.release();
  }
}

/**
 * Finetuning as an adaptation method: `scope` is the SEAL mask ('finetune-mask') or 'full'
 * ('finetune-full'). Deterministic: every step is one full batch of the passage.
 */
export function finetuneMethod(model: LanguageModel, tok: Tokenizer, scope: Mask | 'full', options: Partial<FinetuneOptions> = {}): Method {
  const o = { ...DEFAULT_FINETUNE, ...options };
  checkOptions(o);
  const mask = scopeMask(model, scope);
  return {
    name: scope === 'full' ? 'finetune-full' : 'finetune-mask',
    seeded: false,
    async adapt(passage: Passage) {
      const { overrides, editNorm } = await finetunePassage(model, tok, passage.context, mask, o);
      return { overrides, editNorm, release: () => overrides.forEach((t) => t.release()) };
    },
  };
}
