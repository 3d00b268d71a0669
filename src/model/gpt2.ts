// GPT-2 on the GPU: parameters, forward (logits, loss, hidden states) and backward, all through the
// kernel library. A forward returns a Pass that owns its activations; pass.backward() accumulates
// every parameter's gradient and pass.release() frees the activations.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor } from '../gpu/tensor.ts';
import { paramSpecs, validateConfig, type GPT2Config } from './config.ts';
import { add, gelu, geluBackward } from '../ops/elementwise.ts';
import { attentionBackward, attentionForward } from '../ops/attention.ts';
import { crossEntropyBackward } from '../ops/crossentropy.ts';
import { embeddingBackward, embeddingForward } from '../ops/embedding.ts';
import { layernormBackward, layernormForward, type LayerNormOut } from '../ops/layernorm.ts';
import { matmul, matmulBackward } from '../ops/matmul.ts';
import { Rng } from '../util/random.ts';
import { KvCache } from './generate.ts';
import { paramZeros, passDims, passLoss, readParams, type Decoder, type LanguageModel, type ModelPass, type ParamMap, type PassLoss, type Tokens } from './lm.ts';

export type { ParamMap, Tokens } from './lm.ts';

export class GPT2 implements LanguageModel {
  readonly kind = 'gpt2';
  readonly config: GPT2Config;
  readonly gpu: Gpu;
  readonly params: ParamMap;

  constructor(gpu: Gpu, config: GPT2Config, params: ParamMap) {
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
  static init(gpu: Gpu, config: GPT2Config, seed: number): GPT2 {
    validateConfig(config);
    const rng = new Rng(seed);
    const residualStd = 0.02 / Math.sqrt(2 * config.nLayer);
    const params: ParamMap = new Map();
    for (const s of paramSpecs(config)) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const data =
        s.init === 'ones' ? new Float32Array(n).fill(1) : s.init === 'zeros' ? new Float32Array(n) : rng.normalArray(n, s.init === 'residual' ? residualStd : 0.02);
      params.set(s.name, gpu.tensor(data, s.shape, 'f32', s.name));
    }
    return new GPT2(gpu, config, params);
  }

  /** A model over host arrays (e.g. loaded from safetensors), uploaded to the GPU. */
  static fromArrays(gpu: Gpu, config: GPT2Config, arrays: ReadonlyMap<string, Float32Array>): GPT2 {
    const params: ParamMap = new Map();
    for (const s of paramSpecs(config)) {
      const a = arrays.get(s.name);
      if (!a) throw new RangeError(`GPT2: missing parameter ${s.name}`);
      params.set(s.name, gpu.tensor(a, s.shape, 'f32', s.name));
    }
    return new GPT2(gpu, config, params);
  }

  /** Zeroed tensors shaped like the parameters, e.g. gradients or optimizer moments. */
  zerosLike(): ParamMap {
    return paramZeros(this.gpu, this.params);
  }

  toArrays(): Promise<Map<string, Float32Array>> {
    return readParams(this.gpu, this.params);
  }

  /**
   * Runs the model on tokens (B,T). With targets (B,T; IGNORE_INDEX where no loss), the pass holds
   * the mean cross-entropy in `loss` ([1]) and can run backward. Weights may be overridden per pass
   * (an edited copy of some tensors) without touching the model's own.
   */
  forward(tokens: Tokens, targets?: Tokens, overrides?: ReadonlyMap<string, F32>): Pass {
    return new Pass(this, tokens, targets, overrides);
  }

  decoder(prompts: readonly (readonly number[])[], maxNew: number, overrides?: ReadonlyMap<string, F32>): Decoder {
    return new KvCache(this, prompts, maxNew, overrides);
  }

  release(): void {
    for (const t of this.params.values()) t.release();
  }
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

export class Pass implements ModelPass {
  readonly B: number;
  readonly T: number;
  /** Logits (B,T,V). */
  readonly logits: F32;
  /** Mean loss over targeted positions ([1]); only with targets. */
  readonly loss: F32 | null;
  /** Residual stream after each block (B,T,C): the hidden states for context features. */
  readonly hidden: F32[] = [];
  readonly #model: GPT2;
  readonly #w: (name: string) => F32;
  readonly #tokens: Tokens;
  readonly #targets: Tokens | undefined;
  readonly #layers: LayerActs[] = [];
  readonly #lnf: LayerNormOut;
  readonly #xFinal: F32;
  readonly #ce: PassLoss | null = null;
  #owned: Tensor[] = [];

  constructor(model: GPT2, tokens: Tokens, targets: Tokens | undefined, overrides?: ReadonlyMap<string, F32>) {
    const gpu = model.gpu;
    const { nLayer: L, nHead: NH, nEmbd: C, nCtx, vocabSize: V } = model.config;
    const [B, T] = passDims('GPT2', tokens, targets, nCtx);
    this.B = B;
    this.T = T;
    this.#model = model;
    this.#tokens = tokens;
    this.#targets = targets;
    this.#w = (name) => overrides?.get(name) ?? model.params.get(name)!;
    const w = this.#w;
    const own = <X extends Tensor>(t: X): X => (this.#owned.push(t), t);

    let x = own(embeddingForward(gpu, tokens, w('wte.weight'), w('wpe.weight')));
    for (let l = 0; l < L; l++) {
      const p = (s: string) => w(`h.${l}.${s}`);
      const ln1 = layernormForward(gpu, x, p('ln_1.weight'), p('ln_1.bias'));
      const qkv = own(matmul(gpu, ln1.out, p('attn.c_attn.weight'), { bias: p('attn.c_attn.bias') }) as F32);
      const att = attentionForward(gpu, qkv, NH);
      const proj = own(matmul(gpu, att.out, p('attn.c_proj.weight'), { bias: p('attn.c_proj.bias') }) as F32);
      const x2 = own(add(gpu, x, proj));
      const ln2 = layernormForward(gpu, x2, p('ln_2.weight'), p('ln_2.bias'));
      const fc = own(matmul(gpu, ln2.out, p('mlp.c_fc.weight'), { bias: p('mlp.c_fc.bias') }) as F32);
      const act = own(gelu(gpu, fc));
      const mlp = own(matmul(gpu, act, p('mlp.c_proj.weight'), { bias: p('mlp.c_proj.bias') }) as F32);
      const x3 = own(add(gpu, x2, mlp));
      for (const o of [ln1, ln2]) this.#owned.push(o.out, o.mean, o.rstd);
      this.#owned.push(att.out, att.att);
      this.#layers.push({ x, ln1, qkv, att, proj, x2, ln2, fc, act, mlp });
      this.hidden.push(x3);
      x = x3;
    }
    this.#lnf = layernormForward(gpu, x, w('ln_f.weight'), w('ln_f.bias'));
    this.#owned.push(this.#lnf.out, this.#lnf.mean, this.#lnf.rstd);
    // Tied output embedding: logits = lnf · wteᵀ.
    this.#xFinal = x;
    this.logits = own(matmul(gpu, this.#lnf.out.reshape([B * T, C]), w('wte.weight'), { transB: true }) as F32).reshape([B, T, V]);
    if (targets) {
      this.#ce = passLoss(gpu, this.logits, targets);
      this.loss = this.#ce.mean;
      this.#owned.push(this.#ce.losses, this.#ce.lse, this.#ce.dlosses, this.#ce.mean);
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
    const g = (name: string) => grads.get(name)!;
    const tmp: Tensor[] = [];
    const t = <X extends Tensor>(x: X): X => (tmp.push(x), x);

    const dlogits = t(crossEntropyBackward(gpu, this.logits, this.#targets, this.#ce.lse, dlosses ?? this.#ce.dlosses));
    const dl2 = dlogits.reshape([B * T, V]);
    matmul(gpu, dl2, this.#lnf.out.reshape([B * T, C]), { transA: true, accumulate: true, out: g('wte.weight') });
    const dlnf = t(matmul(gpu, dl2, w('wte.weight')) as F32).reshape([B, T, C]);
    const dx = t(gpu.zeros([B, T, C]));
    layernormBackward(gpu, dlnf, this.#xFinal, w('ln_f.weight'), this.#lnf.mean, this.#lnf.rstd, {
      dinp: dx,
      dweight: g('ln_f.weight'),
      dbias: g('ln_f.bias'),
    });
    for (let l = L - 1; l >= 0; l--) {
      const a = this.#layers[l]!;
      const p = (s: string) => w(`h.${l}.${s}`);
      const pg = (s: string) => g(`h.${l}.${s}`);
      const lin = (x: Tensor, name: string, dy: Tensor) =>
        t(matmulBackward(gpu, x as F32, p(`${name}.weight`), dy as F32, { dw: pg(`${name}.weight`), dbias: pg(`${name}.bias`) }) as F32);
      // x3 = x2 + mlp(ln2(x2)): the residual passes dx on; the MLP adds its part through ln_2.
      const dact = lin(a.act, 'mlp.c_proj', dx);
      const dfc = t(geluBackward(gpu, a.fc, dact));
      const dln2 = lin(a.ln2.out, 'mlp.c_fc', dfc);
      layernormBackward(gpu, dln2, a.x2, p('ln_2.weight'), a.ln2.mean, a.ln2.rstd, { dinp: dx, dweight: pg('ln_2.weight'), dbias: pg('ln_2.bias') });
      // x2 = x + proj(attn(ln1(x))).
      const datt = lin(a.att.out, 'attn.c_proj', dx);
      const dqkv = t(attentionBackward(gpu, datt, a.qkv, a.att.att, NH) as F32);
      const dln1 = lin(a.ln1.out, 'attn.c_attn', dqkv);
      layernormBackward(gpu, dln1, a.x, p('ln_1.weight'), a.ln1.mean, a.ln1.rstd, { dinp: dx, dweight: pg('ln_1.weight'), dbias: pg('ln_1.bias') });
    }
    embeddingBackward(gpu, dx, this.#tokens, g('wte.weight'), g('wpe.weight'));
    for (const x of tmp) x.release();
  }

  release(): void {
    for (const t of this.#owned) t.release();
    this.#owned = [];
  }
}
