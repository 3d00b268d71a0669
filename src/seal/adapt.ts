// Inference-time adaptation: a new passage's edit from one generator pass (the heads' means, no
// sampling, no RL), applied to scratch copies of the masked tensors. The base stays untouched.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { GPT2 } from '../model/gpt2.ts';
import { resolveConfig, type SealConfig } from './config.ts';
import { EditScratch, editSpace, type EditLayout } from './edits.ts';
import { passageFeatures } from './features.ts';
import { headConfigs, makeHeads, meanActions, readHeads, releaseHeads, type Head } from './heads.ts';
import type { Mask } from './mask.ts';

export interface Adaptation {
  /** The edited tensors by name: pass as `overrides` to forward/generate. Valid until the next adapt. */
  overrides: ReadonlyMap<string, F32>;
  /** ‖θ' − θ‖ over the masked tensors. */
  editNorm: number;
  ms: number;
}

export class Adapter {
  readonly model: GPT2;
  readonly heads: Head[];
  readonly config: SealConfig;
  readonly mask: Mask;
  readonly layout: EditLayout;
  readonly #tok: Tokenizer;
  readonly #scratch: EditScratch;

  readonly #layer: number;

  constructor(model: GPT2, tok: Tokenizer, config: SealConfig, heads: Head[], space = editSpace(model, config)) {
    this.model = model;
    this.config = config;
    this.heads = heads;
    this.#tok = tok;
    this.mask = space.mask;
    this.layout = space.layout;
    this.#layer = space.layer;
    const want = heads[0]!.policy.config;
    if (this.layout.actionDim !== want.actionDim || model.config.nEmbd !== want.inputDim) {
      throw new RangeError(`this policy edits ${want.actionDim} values from ${want.inputDim} features; the model and mask give ${this.layout.actionDim} from ${model.config.nEmbd}: wrong model for this policy`);
    }
    this.#scratch = new EditScratch(model.gpu, model.params, this.layout);
  }

  /** The policy a `seal train` run wrote (policy.safetensors, with its config inside). */
  static async load(gpu: Gpu, model: GPT2, tok: Tokenizer, policyPath: string): Promise<Adapter> {
    const { arrays, metadata } = await readHeads(policyPath);
    if (!metadata.seal) throw new Error(`${policyPath}: has no SEAL config (written by an older seal train?)`);
    const config = resolveConfig(JSON.parse(metadata.seal) as Record<string, unknown>);
    const space = editSpace(model, config);
    const heads = makeHeads(gpu, config, headConfigs(config, model.config.nEmbd, space.layout.actionDim), arrays);
    return new Adapter(model, tok, config, heads, space);
  }

  async adapt(passage: string): Promise<Adaptation> {
    const gpu = this.model.gpu;
    const t0 = performance.now();
    const c = this.config;
    const withDir = this.heads.some((h) => h.name === 'step');
    const f = await passageFeatures(this.model, this.#tok, passage, this.#layer, withDir ? this.mask : undefined);
    const ctx = gpu.tensor(f.pooled, [1, f.pooled.length]);
    const dirs = f.direction ? gpu.tensor(f.direction, [1, f.direction.length]) : undefined;
    const { delta, sizes } = await meanActions(this.heads, ctx);
    if (sizes && !Number.isFinite(sizes[0]!)) {
      for (const t of [ctx, ...(dirs ? [dirs] : [])]) t.release();
      delta.release();
      throw new RangeError(`the policy gave a non-finite step size (${sizes[0]}) for this passage`);
    }
    const overrides = this.#scratch.apply(delta.mu, 0, c.alpha, dirs && sizes ? { dirs, row: 0, size: sizes[0]! } : undefined);
    const sq = this.#scratch.squaredNorm();
    const norm = Math.sqrt(await gpu.scalar(sq));
    for (const t of [sq, ctx, ...(dirs ? [dirs] : [])]) t.release();
    delta.release();
    return { overrides, editNorm: norm, ms: performance.now() - t0 };
  }

  release(): void {
    this.#scratch.release();
    releaseHeads(this.heads);
  }
}
