// GPT-2 on the GPU: parameters, forward (logits, loss, hidden states) and backward, all through the
// kernel library. A forward returns a Pass that owns its activations; pass.backward() accumulates
// every parameter's gradient and pass.release() frees the activations.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor, Weight } from '../gpu/tensor.ts';
import { f16ToF32, f32ToF16 } from '../io/safetensors.ts';
import { paramSpecs, validateConfig, type GPT2Config } from './config.ts';
import { add, gelu, geluBackward } from '../ops/elementwise.ts';
import { attentionBackward, attentionForward } from '../ops/attention.ts';
import { crossEntropyBackward, crossEntropyForward, crossEntropyMean } from '../ops/crossentropy.ts';
import { embeddingBackward, embeddingForward } from '../ops/embedding.ts';
import { layernormBackward, layernormForward, type LayerNormOut } from '../ops/layernorm.ts';
import { lmHead, lmHeadBackward } from '../ops/lmhead.ts';
import { matmul, matmulBackward } from '../ops/matmul.ts';
import { Rng } from '../util/random.ts';

export type Tokens = Tensor<'u32'>;
/** Gradients, optimizer moments and edited copies: always f32. */
export type ParamMap = Map<string, F32>;
/** The model's own weights: f32, or with --dtype f16 every matrix in f16 (vectors stay f32). */
export type WeightMap = Map<string, Weight>;
export type WeightDtype = 'f32' | 'f16';

export class GPT2 {
  readonly config: GPT2Config;
  readonly gpu: Gpu;
  readonly params: WeightMap;

  constructor(gpu: Gpu, config: GPT2Config, params: WeightMap) {
    this.gpu = gpu;
    this.config = validateConfig(config);
    for (const s of paramSpecs(config)) {
      const t = params.get(s.name);
      if (!t) throw new RangeError(`GPT2: missing parameter ${s.name}`);
      if (t.shape.join() !== s.shape.join()) throw new RangeError(`GPT2: ${s.name} has shape [${t.shape}], config needs [${s.shape}]`);
    }
    this.params = params;
  }

  /** A fresh model with GPT-2's initialisation (N(0, 0.02), residual projections scaled by 1/√(2L)). */
  static init(gpu: Gpu, config: GPT2Config, seed: number, dtype: WeightDtype = 'f32'): GPT2 {
    validateConfig(config);
    const rng = new Rng(seed);
    const residualStd = 0.02 / Math.sqrt(2 * config.nLayer);
    const arrays = new Map<string, Float32Array>();
    for (const s of paramSpecs(config)) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      arrays.set(s.name, s.init === 'ones' ? new Float32Array(n).fill(1) : s.init === 'zeros' ? new Float32Array(n) : rng.normalArray(n, s.init === 'residual' ? residualStd : 0.02));
    }
    return GPT2.fromArrays(gpu, config, arrays, dtype);
  }

  /**
   * A model over host arrays (e.g. loaded from safetensors), uploaded to the GPU. With dtype f16 the
   * matrices are rounded to f16 on the host, so the GPU never holds them as f32.
   */
  static fromArrays(gpu: Gpu, config: GPT2Config, arrays: ReadonlyMap<string, Float32Array>, dtype: WeightDtype = 'f32'): GPT2 {
    const params: WeightMap = new Map();
    try {
      for (const s of paramSpecs(config)) {
        const a = arrays.get(s.name);
        if (!a) throw new RangeError(`GPT2: missing parameter ${s.name}`);
        params.set(s.name, uploadWeight(gpu, s.name, a, s.shape, dtype));
      }
    } catch (e) {
      for (const t of params.values()) t.release();
      throw e;
    }
    return new GPT2(gpu, config, params);
  }

  /** How the matrices are stored. */
  get dtype(): WeightDtype {
    return this.params.get('wte.weight')!.dtype === 'f16' ? 'f16' : 'f32';
  }

  /** Zeroed tensors shaped like the parameters, e.g. gradients or optimizer moments. */
  zerosLike(): ParamMap {
    return new Map([...this.params].map(([k, t]) => [k, this.gpu.zeros(t.shape, 'f32', `${k}.grad`)]));
  }

  /** The weights as f32 host arrays (f16 ones widened). */
  async toArrays(): Promise<Map<string, Float32Array>> {
    const names = [...this.params.keys()];
    const data = await this.gpu.readMany(names.map((n) => this.params.get(n)!));
    return new Map(names.map((n, i) => [n, data[i] instanceof Uint16Array ? f16ToF32(data[i]) : (data[i] as Float32Array)]));
  }

  /**
   * Runs the model on tokens (B,T). With targets (B,T; IGNORE_INDEX where no loss), the pass holds
   * the mean cross-entropy in `loss` ([1]) and can run backward. Weights may be overridden per pass
   * (an edited copy of some tensors) without touching the model's own.
   */
  forward(tokens: Tokens, targets?: Tokens, overrides?: ReadonlyMap<string, Weight>): Pass {
    return new Pass(this, tokens, targets, overrides);
  }

  release(): void {
    for (const t of this.params.values()) t.release();
  }
}

/** A weight on the GPU as the model stores it: matrices as `dtype` (rounded on the host), vectors f32. */
export function uploadWeight(gpu: Gpu, name: string, data: Float32Array, shape: readonly number[], dtype: WeightDtype): Weight {
  return dtype === 'f16' && shape.length >= 2 ? gpu.tensor(f32ToF16(data), shape, 'f16', name) : gpu.tensor(data, shape, 'f32', name);
}

interface LayerActs {
  x: F32;
  ln1: LayerNormOut;
  qkv: F32;
  att: ReturnType<typeof attentionForward>;
  proj: F32;
  x2: F32;
  ln2: LayerNormOut;
  fc: F32;
  act: F32;
  mlp: F32;
}

export class Pass {
  readonly B: number;
  readonly T: number;
  /** Logits (B,T,V). */
  readonly logits: F32;
  /** Mean loss over targeted positions ([1]); only with targets. */
  readonly loss: F32 | null;
  /** Residual stream after each block (B,T,C): the hidden states for context features. */
  readonly hidden: F32[] = [];
  readonly #model: GPT2;
  /** A weight by name; `vec` for the vectors (LayerNorm gains, biases), always f32 (the ops check). */
  readonly #w: (name: string) => Weight;
  readonly #tokens: Tokens;
  readonly #targets: Tokens | undefined;
  readonly #layers: LayerActs[] = [];
  readonly #lnf: LayerNormOut;
  readonly #xFinal: F32;
  readonly #ce: { losses: F32; lse: F32; dlosses: F32 } | null = null;
  #owned: Tensor[] = [];

  constructor(model: GPT2, tokens: Tokens, targets: Tokens | undefined, overrides?: ReadonlyMap<string, Weight>) {
    const gpu = model.gpu;
    const { nLayer: L, nHead: NH, nEmbd: C, nCtx, vocabSize: V } = model.config;
    if (tokens.shape.length !== 2) throw new RangeError(`GPT2.forward: tokens must be [B×T], got ${tokens}`);
    const [B, T] = tokens.shape as [number, number];
    if (T > nCtx) throw new RangeError(`GPT2.forward: T = ${T} is longer than the context (${nCtx})`);
    if (targets && targets.shape.join() !== tokens.shape.join()) throw new RangeError(`GPT2.forward: targets ${targets} must match tokens ${tokens}`);
    this.B = B;
    this.T = T;
    this.#model = model;
    this.#tokens = tokens;
    this.#targets = targets;
    this.#w = (name) => overrides?.get(name) ?? model.params.get(name)!;
    const w = this.#w;
    const v = (name: string) => w(name) as F32;
    const own = <X extends Tensor>(t: X): X => (this.#owned.push(t), t);

    let x = own(embeddingForward(gpu, tokens, w('wte.weight'), w('wpe.weight')));
    for (let l = 0; l < L; l++) {
      const p = (s: string) => w(`h.${l}.${s}`);
      const pv = (s: string) => v(`h.${l}.${s}`);
      const ln1 = layernormForward(gpu, x, pv('ln_1.weight'), pv('ln_1.bias'));
      const qkv = own(matmul(gpu, ln1.out, p('attn.c_attn.weight'), { bias: pv('attn.c_attn.bias') }) as F32);
      const att = attentionForward(gpu, qkv, NH);
      const proj = own(matmul(gpu, att.out, p('attn.c_proj.weight'), { bias: pv('attn.c_proj.bias') }) as F32);
      const x2 = own(add(gpu, x, proj));
      const ln2 = layernormForward(gpu, x2, pv('ln_2.weight'), pv('ln_2.bias'));
      const fc = own(matmul(gpu, ln2.out, p('mlp.c_fc.weight'), { bias: pv('mlp.c_fc.bias') }) as F32);
      const act = own(gelu(gpu, fc));
      const mlp = own(matmul(gpu, act, p('mlp.c_proj.weight'), { bias: pv('mlp.c_proj.bias') }) as F32);
      const x3 = own(add(gpu, x2, mlp));
      for (const o of [ln1, ln2]) this.#owned.push(o.out, o.mean, o.rstd);
      this.#owned.push(att.out, att.att);
      this.#layers.push({ x, ln1, qkv, att, proj, x2, ln2, fc, act, mlp });
      this.hidden.push(x3);
      x = x3;
    }
    this.#lnf = layernormForward(gpu, x, v('ln_f.weight'), v('ln_f.bias'));
    this.#owned.push(this.#lnf.out, this.#lnf.mean, this.#lnf.rstd);
    // Tied output embedding: logits = lnf · wteᵀ.
    this.#xFinal = x;
    this.logits = own(lmHead(gpu, this.#lnf.out.reshape([B * T, C]), w('wte.weight'))).reshape([B, T, V]);
    if (targets) {
      const ce = crossEntropyForward(gpu, this.logits, targets);
      const { mean, dlosses } = crossEntropyMean(gpu, ce.losses, targets);
      this.#ce = { ...ce, dlosses };
      this.loss = mean;
      this.#owned.push(ce.losses, ce.lse, dlosses, mean);
    } else this.loss = null;
  }

  /** Per-position losses (B,T), 0 where ignored; only with targets. */
  get losses(): F32 | null {
    return this.#ce?.losses ?? null;
  }

  /**
   * Accumulates d(loss)/d(param) into `grads` (a map like GPT2.zerosLike()). `dlosses` (B,T) weighs
   * each position's loss instead of the mean's 1/count: the gradient of Σ dlosses·losses.
   */
  backward(grads: ParamMap, dlosses?: F32): void {
    if (!this.#ce || !this.#targets) throw new Error('Pass.backward: the forward had no targets');
    const gpu = this.#model.gpu;
    const { nLayer: L, nHead: NH, nEmbd: C, vocabSize: V } = this.#model.config;
    const { B, T } = this;
    const w = this.#w;
    const v = (name: string) => w(name) as F32;
    const g = (name: string) => grads.get(name)!;
    const tmp: Tensor[] = [];
    const t = <X extends Tensor>(x: X): X => (tmp.push(x), x);

    const dlogits = t(crossEntropyBackward(gpu, this.logits, this.#targets, this.#ce.lse, dlosses ?? this.#ce.dlosses));
    const dl2 = dlogits.reshape([B * T, V]);
    const dlnf = t(lmHeadBackward(gpu, this.#lnf.out.reshape([B * T, C]), w('wte.weight'), dl2, g('wte.weight'))).reshape([B, T, C]);
    const dx = t(gpu.zeros([B, T, C]));
    layernormBackward(gpu, dlnf, this.#xFinal, v('ln_f.weight'), this.#lnf.mean, this.#lnf.rstd, {
      dinp: dx,
      dweight: g('ln_f.weight'),
      dbias: g('ln_f.bias'),
    });
    for (let l = L - 1; l >= 0; l--) {
      const a = this.#layers[l]!;
      const p = (s: string) => w(`h.${l}.${s}`);
      const pv = (s: string) => v(`h.${l}.${s}`);
      const pg = (s: string) => g(`h.${l}.${s}`);
      const lin = (x: Tensor, name: string, dy: Tensor) =>
        t(matmulBackward(gpu, x as F32, p(`${name}.weight`), dy as F32, { dw: pg(`${name}.weight`), dbias: pg(`${name}.bias`) }) as F32);
      // x3 = x2 + mlp(ln2(x2)): the residual passes dx on; the MLP adds its part through ln_2.
      const dact = lin(a.act, 'mlp.c_proj', dx);
      const dfc = t(geluBackward(gpu, a.fc, dact));
      const dln2 = lin(a.ln2.out, 'mlp.c_fc', dfc);
      layernormBackward(gpu, dln2, a.x2, pv('ln_2.weight'), a.ln2.mean, a.ln2.rstd, { dinp: dx, dweight: pg('ln_2.weight'), dbias: pg('ln_2.bias') });
      // x2 = x + proj(attn(ln1(x))).
      const datt = lin(a.att.out, 'attn.c_proj', dx);
      const dqkv = t(attentionBackward(gpu, datt, a.qkv, a.att.att, NH) as F32);
      const dln1 = lin(a.ln1.out, 'attn.c_attn', dqkv);
      layernormBackward(gpu, dln1, a.x, pv('ln_1.weight'), a.ln1.mean, a.ln1.rstd, { dinp: dx, dweight: pg('ln_1.weight'), dbias: pg('ln_1.bias') });
    }
    embeddingBackward(gpu, dx, this.#tokens, g('wte.weight'), g('wpe.weight'));
    for (const x of tmp) x.release();
  }

  release(): void {
    for (const t of this.#owned) t.release();
    this.#owned = [];
  }
}
