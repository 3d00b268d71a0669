// Inference-time adaptation: a new passage's edit from one generator pass (the policy mean, no
// sampling, no RL), applied to scratch copies of the masked tensors. The base stays untouched.
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { GPT2 } from '../model/gpt2.ts';
import { editSquaredNorm } from '../ops/edit.ts';
import type { SealConfig } from './config.ts';
import { EditScratch, editLayout, type EditLayout } from './edits.ts';
import { passageFeatures } from './features.ts';
import { resolveMask, type Mask } from './mask.ts';
import type { Policy } from './policy.ts';

export interface Adaptation {
  /** The edited tensors by name: pass as `overrides` to forward/generate. Valid until the next adapt. */
  overrides: ReadonlyMap<string, F32>;
  /** ‖α·M⊙Δ‖ */
  editNorm: number;
  ms: number;
}

export class Adapter {
  readonly model: GPT2;
  readonly policy: Policy;
  readonly config: SealConfig;
  readonly mask: Mask;
  readonly layout: EditLayout;
  readonly #tok: Tokenizer;
  readonly #scratch: EditScratch;

  constructor(model: GPT2, tok: Tokenizer, policy: Policy, config: SealConfig) {
    this.model = model;
    this.policy = policy;
    this.config = config;
    this.#tok = tok;
    this.mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), config.mask);
    this.layout = editLayout(this.mask, config.edit, config.rank);
    if (this.layout.actionDim !== policy.config.actionDim) {
      throw new RangeError(`the policy edits ${policy.config.actionDim} values but the mask gives ${this.layout.actionDim}: wrong model or config for this policy`);
    }
    this.#scratch = new EditScratch(model.gpu, model.params, this.layout);
  }

  async adapt(passage: string): Promise<Adaptation> {
    const gpu = this.model.gpu;
    const t0 = performance.now();
    const c = this.config;
    const layer = c.featureLayer < 0 ? this.model.config.nLayer + c.featureLayer : c.featureLayer;
    const f = await passageFeatures(this.model, this.#tok, passage, layer, this.policy.config.gradSkip ? this.mask : undefined);
    const ctx = gpu.tensor(f.pooled, [1, f.pooled.length]);
    const dir = f.direction ? gpu.tensor(f.direction, [1, f.direction.length]) : undefined;
    const pass = this.policy.forward(ctx, dir);
    const overrides = this.#scratch.apply(pass.mu, 0, c.alpha);
    const norms = this.layout.entries.map((e) => editSquaredNorm(gpu, e.edit(pass.mu, 0, c.alpha)));
    const sq = await gpu.readMany(norms);
    for (const t of [...norms, ctx, ...(dir ? [dir] : [])]) t.release();
    pass.release();
    return { overrides, editNorm: Math.sqrt(sq.reduce((s, x) => s + x[0]!, 0)), ms: performance.now() - t0 };
  }

  release(): void {
    this.#scratch.release();
  }
}
