// LoRA adapters on a model's linears, GPT-2 (Conv1D, W [in, out]) or the Llama family (nn.Linear,
// W [out, in]): for each chosen weight (names by the same globs as a mask, src/model/mask.ts),
// factors A [in, r] and B [r, out] whose term s·(x·A)·B, s = alpha/r, the forward adds to the
// linear's output (LanguageModel.forward's `adapters`). B starts at zero, so a fresh adapter is the
// base model exactly. LoraOptimizer trains the factors only: the base is read, never written.
// Adapters save to and load from safetensors (`<weight>.lora_a` / `.lora_b`). A stack of G adapters
// (factors [G, in, r], [G, r, out]) trains G at once, sequence block g through adapter g
// (ops/lora.ts), each clipped by its own gradient norm: the batched inner loops of SEAL variant B.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32 } from '../gpu/tensor.ts';
import { withSafetensors, writeSafetensors, SafetensorsError, type TensorToWrite } from '../io/safetensors.ts';
import { convert } from '../ops/convert.ts';
import { loraMerge, type LoraFactors } from '../ops/lora.ts';
import { adamw, clipGradNorm } from '../ops/optimizer.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import type { AdapterGrads, LanguageModel, ParamMap, Tokens } from './lm.ts';
import { resolveMask } from './mask.ts';

export interface LoraSpec {
  /** Globs over weight names, e.g. `h.*.mlp.c_fc.weight`; only the blocks' linears qualify (loraLayout). */
  targets: string[];
  rank: number;
  /** The term is scaled by alpha / rank (as PEFT does), so changing the rank keeps the step size. */
  alpha: number;
}

/** Where a family's adaptable linears are and how their weights are laid out. */
export interface LoraLayout {
  /** The blocks' linear weights, by name. */
  linear: RegExp;
  /** Their names, for errors. */
  names: string;
  /** nn.Linear's W [out, in] (y = x·Wᵀ) rather than Conv1D's [in, out]. */
  transposed: boolean;
  /** Every one of them: the default targets. */
  all: string[];
}

const GPT2_LAYOUT: LoraLayout = {
  linear: /^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/,
  names: 'attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj',
  transposed: false,
  all: ['h.*.attn.c_attn.weight', 'h.*.attn.c_proj.weight', 'h.*.mlp.c_fc.weight', 'h.*.mlp.c_proj.weight'],
};

const LLAMA_LAYOUT: LoraLayout = {
  linear: /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/,
  names: 'self_attn.q_proj, k_proj, v_proj, o_proj, mlp.gate_proj, up_proj, down_proj',
  transposed: true,
  all: ['model.layers.*.self_attn.*_proj.weight', 'model.layers.*.mlp.*_proj.weight'],
};

/** The layout of a model of this kind (gpt2, or the Llama family: llama, qwen2). */
export const loraLayout = (kind: string): LoraLayout => (kind === 'gpt2' ? GPT2_LAYOUT : LLAMA_LAYOUT);

/** Rank 8, alpha 16 on every linear of the blocks of a model of this kind. */
export const defaultLora = (kind: string): LoraSpec => ({ targets: loraLayout(kind).all, rank: 8, alpha: 16 });

/** GPT-2's default (the text variant's, which runs on GPT-2). */
export const DEFAULT_LORA: LoraSpec = defaultLora('gpt2');

/** [in, out] of an adapted weight, whichever way the model stores it. */
function inOut(model: LanguageModel, name: string): [number, number] {
  const [r, c] = model.params.get(name)!.shape as [number, number];
  return loraLayout(model.kind).transposed ? [c, r] : [r, c];
}

const FORMAT = 'seal-webgpu/lora';

export class Lora {
  readonly spec: LoraSpec;
  readonly adapters: Map<string, LoraFactors>;

  private constructor(spec: LoraSpec, adapters: Map<string, LoraFactors>) {
    this.spec = spec;
    this.adapters = adapters;
  }

  /** Which weights the spec adapts, checked against the model. */
  static targets(model: LanguageModel, spec: LoraSpec): string[] {
    if (!Number.isInteger(spec.rank) || spec.rank < 1) throw new UserError(`lora: rank must be a positive integer, got ${spec.rank}`);
    const layout = loraLayout(model.kind);
    const shapes = new Map([...model.params].map(([k, t]) => [k, t.shape] as const));
    const names = resolveMask(shapes, { tensors: spec.targets }).entries.map((e) => e.name);
    const bad = names.filter((n) => !layout.linear.test(n));
    if (bad.length) throw new UserError(`lora: ${bad.join(', ')} ${bad.length > 1 ? 'are not' : 'is not'} a block's linear weight (${layout.names})`);
    return names;
  }

  /**
   * A fresh adapter: A ~ U(±1/√in) (PEFT's Kaiming init), B = 0. With `stack` G, G copies of that
   * adapter stacked ([G, in, r], [G, r, out]) to train G at once.
   */
  static create(model: LanguageModel, spec: LoraSpec, seed: number, stack?: number): Lora {
    if (stack !== undefined && (!Number.isInteger(stack) || stack < 1)) throw new RangeError(`lora: a stack must hold a positive integer number of adapters, got ${stack}`);
    const gpu = model.gpu;
    const rng = new Rng(seed);
    const lead = stack === undefined ? [] : [stack];
    const adapters = new Map<string, LoraFactors>();
    for (const name of Lora.targets(model, spec)) {
      const [nIn, nOut] = inOut(model, name);
      const bound = 1 / Math.sqrt(nIn);
      const a = rng.uniformArray(nIn * spec.rank, -bound, bound);
      const stacked = new Float32Array(a.length * (stack ?? 1));
      for (let g = 0; g < (stack ?? 1); g++) stacked.set(a, g * a.length);
      adapters.set(name, {
        a: gpu.tensor(stacked, [...lead, nIn, spec.rank], 'f32', `${name}.lora_a`),
        b: gpu.zeros([...lead, spec.rank, nOut], 'f32', `${name}.lora_b`),
        scale: spec.alpha / spec.rank,
      });
    }
    return new Lora(spec, adapters);
  }

  /** How many adapters are stacked (G), or undefined for a single one. */
  get stack(): number | undefined {
    const a = this.adapters.values().next().value?.a;
    return a?.shape.length === 3 ? a.shape[0] : undefined;
  }

  /** The factors as named tensors (`<weight>.lora_a`, `<weight>.lora_b`), in a fixed order. */
  tensors(): Map<string, F32> {
    const out = new Map<string, F32>();
    for (const [name, f] of this.adapters) out.set(`${name}.lora_a`, f.a).set(`${name}.lora_b`, f.b);
    return out;
  }

  /**
   * Merged copies W + s·A·B of the adapted weights (adapter `adapter` of a stack), in the model's
   * layout: overrides for its forward or generation.
   */
  merged(model: LanguageModel, adapter = 0): ParamMap {
    const transposed = loraLayout(model.kind).transposed;
    return new Map(
      [...this.adapters].map(([name, f]) => {
        // An f16 base is widened first: merged copies are f32, as every edited copy.
        const w = model.params.get(name)!;
        const base = w.dtype === 'f16' ? convert(model.gpu, w, 'f32') : w;
        const m = loraMerge(model.gpu, base as F32, f, { transposed, adapter }) as F32;
        if (base !== w) base.release();
        return [name, m];
      }),
    );
  }

  /** An independent copy (e.g. a kept generator adapter to start a fresh inner-loop adapter from). */
  clone(gpu: Gpu): Lora {
    const copy = (t: F32) => {
      const c = gpu.empty(t.shape, 'f32', t.label);
      gpu.copy(t, c);
      return c;
    };
    return new Lora(this.spec, new Map([...this.adapters].map(([n, f]) => [n, { a: copy(f.a), b: copy(f.b), scale: f.scale }])));
  }

  release(): void {
    for (const f of this.adapters.values()) {
      f.a.release();
      f.b.release();
    }
  }

  /** Writes the factors (and, for a resumable checkpoint, the optimizer's moments and step) atomically. */
  async save(path: string, gpu: Gpu, state?: unknown, optimizer?: LoraOptimizer): Promise<void> {
    if (this.stack !== undefined) throw new RangeError(`lora: a stack of ${this.stack} adapters is not saved; merge or train one adapter`);
    const named = [...this.tensors()];
    if (optimizer) for (const [prefix, map] of [['adam.m.', optimizer.m], ['adam.v.', optimizer.v]] as const) for (const [n, t] of map) named.push([prefix + n, t]);
    const data = await gpu.readMany(named.map(([, t]) => t));
    const tensors: [string, TensorToWrite][] = named.map(([n, t], i) => [n, { shape: t.shape, data: data[i] as Float32Array }]);
    await writeSafetensors(path, tensors, { format: FORMAT, spec: JSON.stringify(this.spec), ...(optimizer ? { step: String(optimizer.step) } : {}), ...(state !== undefined ? { state: JSON.stringify(state) } : {}) });
  }

  /** Loads an adapter saved by `save` for this model; `state` is what was saved with it. */
  static async load(model: LanguageModel, path: string): Promise<{ lora: Lora; state?: unknown; optimizer?: { m: Map<string, F32>; v: Map<string, F32>; step: number } }> {
    return withSafetensors(path, async (f) => {
      if (f.metadata.format !== FORMAT || !f.metadata.spec) throw new SafetensorsError(`${path}: not a LoRA adapter (no '${FORMAT}' metadata)`);
      const spec = JSON.parse(f.metadata.spec) as LoraSpec;
      const adapters = new Map<string, LoraFactors>();
      for (const name of Lora.targets(model, spec)) {
        const [nIn, nOut] = inOut(model, name);
        const get = async (suffix: string, shape: number[]) => model.gpu.tensor(await f.getFinite(name + suffix, shape), shape, 'f32', name + suffix);
        adapters.set(name, { a: await get('.lora_a', [nIn, spec.rank]), b: await get('.lora_b', [spec.rank, nOut]), scale: spec.alpha / spec.rank });
      }
      const lora = new Lora(spec, adapters);
      const out: { lora: Lora; state?: unknown; optimizer?: { m: Map<string, F32>; v: Map<string, F32>; step: number } } = { lora };
      if (f.metadata.state) out.state = JSON.parse(f.metadata.state) as unknown;
      if (f.metadata.step !== undefined) {
        const moments = async (prefix: string) => {
          const map = new Map<string, F32>();
          for (const [n, t] of lora.tensors()) map.set(n, model.gpu.tensor(await f.getFinite(prefix + n, t.shape), t.shape, 'f32', prefix + n));
          return map;
        };
        out.optimizer = { m: await moments('adam.m.'), v: await moments('adam.v.'), step: Number(f.metadata.step) };
      }
      return out;
    });
  }
}

export interface LoraOptimizeConfig {
  lr: number;
  weightDecay: number;
  gradClip: number;
}

export const DEFAULT_LORA_OPTIMIZE: LoraOptimizeConfig = { lr: 1e-3, weightDecay: 0, gradClip: 1 };

/** AdamW on an adapter's factors alone; the backward skips the frozen base's parameter gradients. */
export class LoraOptimizer {
  readonly model: LanguageModel;
  readonly lora: Lora;
  readonly config: LoraOptimizeConfig;
  readonly grads: Map<string, { da: F32; db: F32 }>;
  readonly m: Map<string, F32>;
  readonly v: Map<string, F32>;
  step = 0;

  constructor(model: LanguageModel, lora: Lora, config: LoraOptimizeConfig, state?: { m: Map<string, F32>; v: Map<string, F32>; step: number }) {
    const gpu = model.gpu;
    this.model = model;
    this.lora = lora;
    this.config = config;
    this.grads = new Map([...lora.adapters].map(([n, f]) => [n, { da: gpu.zeros(f.a.shape), db: gpu.zeros(f.b.shape) }]));
    const zeros = () => new Map([...lora.tensors()].map(([n, t]) => [n, gpu.zeros(t.shape)]));
    this.m = state?.m ?? zeros();
    this.v = state?.v ?? zeros();
    this.step = state?.step ?? 0;
  }

  /**
   * One step on a batch (targets IGNORE_INDEX where no loss; `dlosses` weighs positions as
   * ModelPass.backward takes it; a stack's adapter g sees the g-th of G equal blocks of sequences,
   * and its gradient is clipped by its own norm); resolves to the batch's mean loss before the update, or NaN without
   * `read` (then nothing waits for the GPU: k steps go out as one batch of work).
   */
  async update(tokens: Tokens, targets: Tokens, dlosses?: F32, lr = this.config.lr, read = true): Promise<number> {
    const gpu = this.model.gpu;
    for (const g of this.grads.values()) gpu.clear(g.da), gpu.clear(g.db);
    const pass = this.model.forward(tokens, targets, undefined, { adapters: this.lora.adapters });
    pass.backward(null, dlosses, this.grads as AdapterGrads);
    const flat = [...this.grads.values()].flatMap((g) => [g.da, g.db]);
    const norm = clipGradNorm(gpu, flat, this.config.gradClip, this.lora.stack);
    this.step++;
    for (const [name, f] of this.lora.adapters) {
      const g = this.grads.get(name)!;
      for (const [key, p, d] of [['lora_a', f.a, g.da], ['lora_b', f.b, g.db]] as const) {
        adamw(gpu, p, d, this.m.get(`${name}.${key}`)!, this.v.get(`${name}.${key}`)!, this.step, { lr, weightDecay: this.config.weightDecay });
      }
    }
    const loss = read ? (await gpu.readMany([pass.loss!]))[0]![0]! : NaN;
    pass.release();
    norm.release();
    return loss;
  }

  release(): void {
    for (const g of this.grads.values()) g.da.release(), g.db.release();
    for (const map of [this.m, this.v]) for (const t of map.values()) t.release();
  }
}
