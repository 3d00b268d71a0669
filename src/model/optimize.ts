// Optimising a model's parameters on the GPU: per step zero grads, forward, backward, clip, AdamW
// (with the warm-up + cosine learning-rate schedule). The host reads back only the loss and the
// gradient norm, once per step. Used by pretraining; "train" is kept for SEAL's `seal train`.
// Weights stored f16 are trained through an f32 master copy (AdamW updates it; the f16 weights are
// its rounding after each step): an update of lr·1 on a weight of size 1 is below f16's resolution
// (2⁻¹⁰) at the learning rates used here, so updating the f16 weights in place would lose most steps.
import type { F32, Tensor } from '../gpu/tensor.ts';
import { convert } from '../ops/convert.ts';
import { adamw, clipGradNorm, type AdamWConfig } from '../ops/optimizer.ts';
import type { LanguageModel, ParamMap, Tokens } from './lm.ts';

export interface OptimizeConfig {
  lr: number;
  /** Linear warm-up steps, then cosine decay to lr·minLrRatio at totalSteps. */
  warmup: number;
  totalSteps: number;
  minLrRatio: number;
  weightDecay: number;
  gradClip: number;
}

export const DEFAULT_OPTIMIZE: OptimizeConfig = { lr: 3e-3, warmup: 50, totalSteps: 2000, minLrRatio: 0.1, weightDecay: 0.01, gradClip: 1 };

export function learningRate(c: OptimizeConfig, step: number): number {
  if (step < c.warmup) return (c.lr * (step + 1)) / c.warmup;
  const p = Math.min(1, (step - c.warmup) / Math.max(1, c.totalSteps - c.warmup));
  return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

export class Optimizer {
  readonly model: LanguageModel;
  readonly config: OptimizeConfig;
  readonly grads: ParamMap;
  readonly m: ParamMap;
  readonly v: ParamMap;
  /** f32 masters of the weights stored f16; AdamW updates these. */
  readonly master: ParamMap;
  /** Steps taken so far. */
  step = 0;

  constructor(model: LanguageModel, config: OptimizeConfig, state?: { m: ParamMap; v: ParamMap; step: number }) {
    this.model = model;
    this.config = config;
    this.grads = model.zerosLike();
    this.m = state?.m ?? model.zerosLike();
    this.v = state?.v ?? model.zerosLike();
    this.step = state?.step ?? 0;
    this.master = new Map([...model.params].filter(([, p]) => p.dtype === 'f16').map(([k, p]) => [k, convert(model.gpu, p, 'f32')]));
  }

  /** One step on a batch; resolves to the batch's loss (before the update) and the gradient norm. */
  async update(tokens: Tokens, targets: Tokens): Promise<{ loss: number; gradNorm: number; lr: number }> {
    const gpu = this.model.gpu;
    for (const g of this.grads.values()) gpu.clear(g);
    const pass = this.model.forward(tokens, targets);
    pass.backward(this.grads);
    const norm = clipGradNorm(gpu, [...this.grads.values()], this.config.gradClip);
    const lr = learningRate(this.config, this.step);
    const opt: AdamWConfig = { lr, weightDecay: this.config.weightDecay };
    for (const [name, w] of this.model.params) {
      // LayerNorm gains, biases and embeddings are not decayed (as GPT-2 training code does).
      const decay = w.shape.length === 2 && name !== 'wte.weight' && name !== 'wpe.weight';
      const master = this.master.get(name);
      adamw(gpu, master ?? (w as F32), this.grads.get(name)!, this.m.get(name)!, this.v.get(name)!, this.step + 1, decay ? opt : { ...opt, weightDecay: 0 });
      if (master) convert(gpu, master, 'f16', w as Tensor<'f16'>);
    }
    const [loss, gradNorm] = await gpu.readMany([pass.loss as F32, norm]);
    pass.release();
    norm.release();
    this.step++;
    return { loss: loss![0]!, gradNorm: gradNorm![0]!, lr };
  }

  release(): void {
    for (const map of [this.grads, this.m, this.v, this.master]) for (const t of map.values()) t.release();
  }
}
