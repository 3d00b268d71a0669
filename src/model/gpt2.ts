// GPT-2 on the GPU: parameters, forward (logits, loss, hidden states) and backward, all through the
// kernel library. A forward returns a Pass that owns its activations; pass.backward() accumulates
// every parameter's gradient and pass.release() frees the activations.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor, Weight } from '../gpu/tensor.ts';
import { paramSpecs, validateConfig, type GPT2Config } from './config.ts';
import { add, gelu, geluBackward } from '../ops/elementwise.ts';
import { attentionBackward, attentionForward } from '../ops/attention.ts';
import { crossEntropyBackward } from '../ops/crossentropy.ts';
import { embeddingBackward, embeddingForward } from '../ops/embedding.ts';
import { layernormBackward, layernormForward, type LayerNormOut } from '../ops/layernorm.ts';
import { lmHead, lmHeadBackward } from '../ops/lmhead.ts';
import { matmul, matmulBackward } from '../ops/matmul.ts';
import { loraBackward, loraForward } from '../ops/lora.ts';
import { gatherRows, scatterRowsAdd, type RowIndex } from '../ops/rows.ts';
import { KvCache } from './generate.ts';
import { randomGpt2Weights } from './shapes.ts';
import { checkParams, paramZeros, passDims, passLossAt, readParams, repeat, type AdapterGrads, type Adapters, type Decoder, type LanguageModel, type ModelPass, type ParamMap, type PassLoss, type PassOptions, type Prefix, type PrefixPoint, type Tokens, type WeightDtype, type WeightMap, storedAs, uploadWeight, vec } from './lm.ts';

export type { ParamMap, Tokens, WeightDtype, WeightMap } from './lm.ts';
export type { Adapters, AdapterGrads, PassOptions, Prefix, PrefixPoint } from './lm.ts';

export class GPT2 implements LanguageModel {
  readonly kind = 'gpt2';
  readonly config: GPT2Config;
  readonly gpu: Gpu;
  readonly params: WeightMap;

  constructor(gpu: Gpu, config: GPT2Config, params: WeightMap) {
    this.gpu = gpu;
    this.config = validateConfig(config);
    checkParams('GPT2', paramSpecs(config), params);
    this.params = params;
  }

  /** A fresh model with GPT-2's initialisation (N(0, 0.02), residual projections scaled by 1/√(2L)). */
  static init(gpu: Gpu, config: GPT2Config, seed: number, dtype: WeightDtype = 'f32'): GPT2 {
    validateConfig(config);
    return GPT2.fromArrays(gpu, config, randomGpt2Weights(config, seed), dtype);
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
    return storedAs(this.params, 'wte.weight');
  }

  /** Zeroed tensors shaped like the parameters, e.g. gradients or optimizer moments. */
  zerosLike(): ParamMap {
    return paramZeros(this.gpu, this.params);
  }

  /** The weights as f32 host arrays (f16 ones widened). */
  toArrays(): Promise<Map<string, Float32Array>> {
    return readParams(this.gpu, this.params);
  }

  /**
   * Runs the model on tokens (B,T). With targets (B,T; IGNORE_INDEX where no loss), the pass holds
   * the mean cross-entropy in `loss` ([1]) and can run backward. Weights may be overridden per pass
   * (an edited copy of some tensors) without touching the model's own; LoRA adapters
   * (opts.adapters) add their term to the outputs of the linears they name.
   */
  forward(tokens: Tokens, targets?: Tokens, overrides?: ReadonlyMap<string, Weight>, opts: PassOptions = {}): Pass {
    return new Pass(this, tokens, targets, overrides, opts);
  }

  /**
   * The residual stream of `tokens` under the model's own weights up to `at`: every pass whose
   * overrides and gradients lie at or above `at` shares it (forward(…, prefix) starts there).
   */
  prefix(tokens: Tokens, at: PrefixPoint): Prefix {
    const L = this.config.nLayer;
    if (!Number.isInteger(at.layer) || at.layer < 0 || at.layer > L || (at.layer === L && at.mlp)) throw new RangeError(`GPT2.prefix: no point (layer ${at.layer}${at.mlp ? ', mlp' : ''}) in ${L} layers`);
    const w = (name: string) => this.params.get(name)!;
    let x = embeddingForward(this.gpu, tokens, w('wte.weight'), w('wpe.weight'));
    for (let l = 0; l < at.layer + (at.mlp ? 1 : 0); l++) {
      const a = attnHalf(this, w, l, x);
      releaseAll([...attnActs(a), x]);
      x = a.x2;
      if (l === at.layer) break; // at.mlp: stop before the MLP
      const m = mlpHalf(this, w, l, x);
      releaseAll([...mlpActs(m), x]);
      x = m.x3;
    }
    return { at, tokens, x };
  }

  /** Where a pass may start when only these tensors are overridden or differentiated: just below the lowest. */
  prefixPoint(names: Iterable<string>): PrefixPoint | null {
    let pos = 2 * this.config.nLayer; // ln_f: after every block
    for (const n of names) pos = Math.min(pos, paramPosition(n, this.config.nLayer));
    return pos < 0 ? null : { layer: pos >> 1, mlp: (pos & 1) === 1 };
  }

  decoder(prompts: readonly (readonly number[])[], maxNew: number, overrides?: ReadonlyMap<string, Weight>): Decoder {
    return new KvCache(this, prompts, maxNew, overrides);
  }

  release(): void {
    for (const t of this.params.values()) t.release();
  }
}

/** A weight by name: an override where there is one, else the model's own. */
type Weights = (name: string) => Weight;
/** A vector weight (LayerNorm gain, bias): always f32 (the ops check). */

/**
 * A parameter's place in the forward order: 2l for block l's ln_1 and attention, 2l + 1 for its
 * ln_2 and MLP, 2L for ln_f; -1 for the embeddings (wte is also the output head: nothing is below it).
 */
function paramPosition(name: string, L: number): number {
  const m = /^h\.(\d+)\.(ln_1|attn|ln_2|mlp)\./.exec(name);
  if (m) return 2 * Number(m[1]) + (m[2] === 'ln_2' || m[2] === 'mlp' ? 1 : 0);
  if (name.startsWith('ln_f.')) return 2 * L;
  return -1;
}

interface AttnActs {
  x: F32;
  ln1: LayerNormOut;
  qkv: F32;
  att: ReturnType<typeof attentionForward>;
  /** With rows: the attention output and the residual at those rows (else att.out and x). */
  rows: RowIndex | undefined;
  out: F32;
  xr: F32;
  proj: F32;
  x2: F32;
}

interface MlpActs {
  /** The input (not owned). */
  x2: F32;
  ln2: LayerNormOut;
  fc: F32;
  act: F32;
  mlp: F32;
  x3: F32;
}

/**
 * x·W + bias for x [.., K]: W [K, N] shared by every row, or stacked [G, K, N], variant g's for the
 * g-th of G equal blocks of x's rows (PassOptions.variants). The result is shaped [.., N].
 */
function linear(gpu: Gpu, x: F32, w: Weight, bias: F32): F32 {
  if (w.shape.length === 2) return matmul(gpu, x, w, { bias });
  const [G, K, N] = w.shape as [number, number, number];
  // The caller owns (releases) the [.., N] tensor; the batched product writes through a view of it.
  const y = gpu.empty([...x.shape.slice(0, -1), N]);
  matmul(gpu, x.reshape([G, x.size / (G * K), K]), w, { bias, out: y.reshape([G, x.size / (G * K), N]) });
  return y;
}

/** Adds an adapter's term to a linear's output y (from its input x), where one is on that weight. */
type Adapt = (x: F32, name: string, y: F32) => void;
const noAdapt: Adapt = () => {};

/** Block l's first half on the residual x: x2 = x + attn(ln_1(x)), from the projection on at `rows` only. */
function attnHalf(model: GPT2, w: Weights, l: number, x: F32, rows?: RowIndex, adapt: Adapt = noAdapt, variants = 1): AttnActs {
  const gpu = model.gpu;
  const p = (s: string) => w(`h.${l}.${s}`);
  const pv = (s: string) => vec(w, `h.${l}.${s}`);
  const ln1 = layernormForward(gpu, x, pv('ln_1.weight'), pv('ln_1.bias'));
  const qkv = linear(gpu, ln1.out, p('attn.c_attn.weight'), pv('attn.c_attn.bias'));
  adapt(ln1.out, `h.${l}.attn.c_attn`, qkv);
  const att = attentionForward(gpu, qkv, model.config.nHead);
  const out = rows ? gatherRows(gpu, att.out, rows, variants) : att.out;
  const xr = rows ? gatherRows(gpu, x, rows, variants) : x;
  const proj = linear(gpu, out, p('attn.c_proj.weight'), pv('attn.c_proj.bias'));
  adapt(out, `h.${l}.attn.c_proj`, proj);
  return { x, ln1, qkv, att, rows, out, xr, proj, x2: add(gpu, xr, proj) };
}

/** Block l's second half: x3 = x2 + mlp(ln_2(x2)). */
function mlpHalf(model: GPT2, w: Weights, l: number, x2: F32, adapt: Adapt = noAdapt): MlpActs {
  const gpu = model.gpu;
  const p = (s: string) => w(`h.${l}.${s}`);
  const pv = (s: string) => vec(w, `h.${l}.${s}`);
  const ln2 = layernormForward(gpu, x2, pv('ln_2.weight'), pv('ln_2.bias'));
  const fc = linear(gpu, ln2.out, p('mlp.c_fc.weight'), pv('mlp.c_fc.bias'));
  adapt(ln2.out, `h.${l}.mlp.c_fc`, fc);
  const act = gelu(gpu, fc);
  const mlp = linear(gpu, act, p('mlp.c_proj.weight'), pv('mlp.c_proj.bias'));
  adapt(act, `h.${l}.mlp.c_proj`, mlp);
  return { x2, ln2, fc, act, mlp, x3: add(gpu, x2, mlp) };
}

/** The intermediates a half owns (not its input, not its output). */
const attnActs = (a: AttnActs): Tensor[] => [a.ln1.out, a.ln1.mean, a.ln1.rstd, a.qkv, a.att.out, a.att.att, a.proj, ...(a.rows ? [a.out, a.xr] : [])];
const mlpActs = (m: MlpActs): Tensor[] => [m.ln2.out, m.ln2.mean, m.ln2.rstd, m.fc, m.act, m.mlp];
const releaseAll = (ts: readonly Tensor[]) => ts.forEach((t) => t.release());

interface LayerActs {
  /** Null in the layer where a prefix hands over before the MLP. */
  attn: AttnActs | null;
  mlp: MlpActs;
}

export class Pass implements ModelPass {
  readonly B: number;
  readonly T: number;
  /** Logits (B,T,V). */
  readonly logits: F32;
  /** Mean loss over targeted positions ([1]); only with targets. */
  readonly loss: F32 | null;
  /** Residual stream after each block (B,T,C), from the prefix's layer on: the hidden states for context features. */
  readonly hidden: F32[] = [];
  readonly #model: GPT2;
  readonly #w: Weights;
  readonly #tokens: Tokens;
  readonly #targets: Tokens | undefined;
  /** The targets the loss reads: at the rows with rows. */
  readonly #ceTargets: Tokens | undefined;
  readonly #rows: RowIndex | undefined;
  /** Layers from the prefix's on (all of them without a prefix). */
  readonly #layers: LayerActs[] = [];
  readonly #start: PrefixPoint;
  readonly #prefixed: boolean;
  readonly #lnf: LayerNormOut;
  readonly #xFinal: F32;
  readonly #ce: PassLoss | null;
  readonly #adapters: Adapters | undefined;
  readonly #variants: number;
  /** x·A of each adapted linear, by weight name: the adapters' backward needs it. */
  readonly #loraH = new Map<string, F32>();
  #owned: Tensor[] = [];

  constructor(model: GPT2, tokens: Tokens, targets: Tokens | undefined, overrides?: ReadonlyMap<string, Weight>, { prefix, rows, adapters, variants: G = 1 }: PassOptions = {}) {
    const gpu = model.gpu;
    const { nLayer: L, nEmbd: C, nCtx, vocabSize: V } = model.config;
    const [B, T] = passDims('GPT2', tokens, targets, nCtx);
    checkVariants(model, G, overrides, adapters);
    if (rows && rows.of !== B * T) throw new RangeError(`GPT2.forward: the row index is over ${rows.of} positions, not the ${B * T} of ${tokens}`);
    if (prefix) {
      if (prefix.tokens !== tokens) throw new RangeError('GPT2.forward: the prefix was computed for other tokens');
      const start = 2 * prefix.at.layer + (prefix.at.mlp ? 1 : 0);
      for (const [what, names] of [['overridden', overrides], ['adapted', adapters]] as const) {
        const below = [...(names?.keys() ?? [])].find((n) => paramPosition(n, L) < start);
        if (below) throw new RangeError(`GPT2.forward: ${below} is ${what} below the prefix (layer ${prefix.at.layer}${prefix.at.mlp ? ', mlp' : ''})`);
      }
    }
    this.B = G * B;
    this.T = T;
    this.#variants = G;
    this.#model = model;
    this.#tokens = tokens;
    this.#targets = targets;
    this.#start = prefix?.at ?? { layer: 0, mlp: false };
    this.#prefixed = prefix !== undefined;
    this.#w = (name) => overrides?.get(name) ?? model.params.get(name)!;
    const w = this.#w;
    const own = <X extends Tensor>(t: X): X => (this.#owned.push(t), t);
    this.#adapters = adapters;
    // y += s·(x·A)·B for an adapted linear (x, y as [rows, ·] views).
    const adapt: Adapt = (x, name, y) => {
      const f = adapters?.get(`${name}.weight`);
      if (f) this.#loraH.set(name, own(loraForward(gpu, flat2(x), f, flat2(y))));
    };

    this.#rows = rows;
    // With rows, the last block's attention projection is the first per-row step at them alone.
    const rowsFrom = rows ? Math.max(2 * (L - 1), 2 * this.#start.layer + (this.#start.mlp ? 1 : 0)) : Infinity;
    let x = prefix?.x ?? own(embeddingForward(gpu, tokens, w('wte.weight'), w('wpe.weight')));
    // The variants share the input: G copies of it (of its rows where the pass starts above the last attention).
    if (rowsFrom !== Infinity && rowsFrom > 2 * (L - 1)) x = own(gatherRows(gpu, x, rows!, G));
    else if (G > 1) x = own(repeat(gpu, x, G));
    for (let l = this.#start.layer; l < L; l++) {
      const attn = l === this.#start.layer && this.#start.mlp ? null : attnHalf(model, w, l, x, rowsFrom === 2 * l ? rows : undefined, adapt, G);
      if (attn) this.#owned.push(...attnActs(attn), attn.x2);
      const mlp = mlpHalf(model, w, l, attn?.x2 ?? x, adapt);
      this.#owned.push(...mlpActs(mlp), mlp.x3);
      this.#layers.push({ attn, mlp });
      this.hidden.push(mlp.x3);
      x = mlp.x3;
    }
    this.#lnf = layernormForward(gpu, x, vec(w, 'ln_f.weight'), vec(w, 'ln_f.bias'));
    this.#owned.push(this.#lnf.out, this.#lnf.mean, this.#lnf.rstd);
    // Tied output embedding: logits = lnf · wteᵀ (in vocabulary tiles where wte or the logits exceed a binding).
    this.#xFinal = x;
    const [lb, lt] = rows ? [1, G * rows.idx.size] : [G * B, T];
    this.logits = own(lmHead(gpu, this.#lnf.out.reshape([lb * lt, C]), w('wte.weight'))).reshape([lb, lt, V]);
    ({ targets: this.#ceTargets, ce: this.#ce } = passLossAt(gpu, this.logits, targets, rows, own, G));
    this.loss = this.#ce?.mean ?? null;
  }

  /** Per-position losses (B,T), 0 where ignored; only with targets. */
  get losses(): F32 | null {
    return this.#ce?.losses ?? null;
  }

  /**
   * Accumulates d(loss)/d(param) into `grads` for the parameters it holds (a map like
   * GPT2.zerosLike(), or part of one): the backward stops below the lowest of them, and a parameter
   * not in `grads` gets no weight gradient. `dlosses` (B,T) weighs each position's loss instead of
   * the mean's 1/count: the gradient of Σ dlosses·losses. With adapters in the forward,
   * `adapterGrads` receives theirs too; `grads` null asks for no base gradient (a frozen base).
   */
  backward(baseGrads: ParamMap | null, dlosses?: F32, adapterGrads?: AdapterGrads): void {
    const grads: ReadonlyMap<string, F32> = baseGrads ?? new Map();
    if (!this.#ce || !this.#targets) throw new Error('Pass.backward: the forward had no targets');
    if (this.#variants > 1) throw new Error(`Pass.backward: a pass of ${this.#variants} variants is forward only`);
    const gpu = this.#model.gpu;
    const { nLayer: L, nHead: NH, nEmbd: C, vocabSize: V } = this.#model.config;
    const w = this.#w;
    const [lb, lt] = this.#rows ? [1, this.#rows.idx.size] : [this.B, this.T];
    const adapted = [...(this.#adapters?.keys() ?? [])];
    const stop = Math.min(2 * L, ...[...grads.keys(), ...adapted].map((n) => paramPosition(n, L)));
    const start = this.#prefixed ? 2 * this.#start.layer + (this.#start.mlp ? 1 : 0) : -1;
    if (stop < start) throw new RangeError(`Pass.backward: a gradient below where this pass's prefix starts (layer ${this.#start.layer}${this.#start.mlp ? ', mlp' : ''})`);
    const tmp: Tensor[] = [];
    const t = <X extends Tensor>(x: X): X => (tmp.push(x), x);
    const lnBack = (dout: F32, inp: F32, name: string, ln: LayerNormOut, dx: F32) => {
      const [dweight, dbias] = [grads.get(`${name}.weight`), grads.get(`${name}.bias`)];
      const r = layernormBackward(gpu, dout, inp, vec(w, `${name}.weight`), ln.mean, ln.rstd, { dinp: dx, ...(dweight ? { dweight } : {}), ...(dbias ? { dbias } : {}) });
      if (!dweight) r.dweight.release();
      if (!dbias) r.dbias.release();
    };

    const dlogits = t(crossEntropyBackward(gpu, this.logits, this.#ceTargets!, this.#ce.lse, dlosses ?? this.#ce.dlosses));
    const dl2 = dlogits.reshape([lb * lt, V]);
    const dlnf = t(lmHeadBackward(gpu, this.#lnf.out.reshape([lb * lt, C]), w('wte.weight'), dl2, grads.get('wte.weight'))).reshape(this.#xFinal.shape);
    // The residual's gradient, at the rows until the backward passes the attention that gathered them.
    let dx = t(gpu.zeros(this.#xFinal.shape));
    lnBack(dlnf, this.#xFinal, 'ln_f', this.#lnf, dx);
    for (let l = L - 1; l >= 0 && 2 * l + 1 >= stop; l--) {
      const a = this.#layers[l - this.#start.layer]!;
      const lin = (x: Tensor, name: string, dy: Tensor) => {
        const [dw, dbias] = [grads.get(`h.${l}.${name}.weight`), grads.get(`h.${l}.${name}.bias`)];
        const dx = t(matmulBackward(gpu, x as F32, w(`h.${l}.${name}.weight`), dy as F32, { ...(dw ? { dw } : {}), ...(dbias ? { dbias } : {}) }) as F32);
        const f = this.#adapters?.get(`h.${l}.${name}.weight`);
        if (f) {
          const ag = adapterGrads?.get(`h.${l}.${name}.weight`);
          if (!ag) throw new Error(`Pass.backward: no adapter gradients given for h.${l}.${name}.weight`);
          loraBackward(gpu, flat2(x as F32), this.#loraH.get(`h.${l}.${name}`)!, f, flat2(dy as F32), { ...ag, dx: flat2(dx) });
        }
        return dx;
      };
      // x3 = x2 + mlp(ln2(x2)): the residual passes dx on; the MLP adds its part through ln_2.
      const m = a.mlp;
      const dact = lin(m.act, 'mlp.c_proj', dx);
      const dfc = t(geluBackward(gpu, m.fc, dact));
      const ln2Wanted = grads.has(`h.${l}.ln_2.weight`) || grads.has(`h.${l}.ln_2.bias`);
      if (2 * l + 1 === stop && !ln2Wanted && !grads.has(`h.${l}.mlp.c_fc.bias`) && !this.#adapters?.has(`h.${l}.mlp.c_fc.weight`)) {
        // The lowest tensor wanted is c_fc's weight: its dW alone (the same product matmulBackward
        // adds); nothing below needs dx.
        const dw = grads.get(`h.${l}.mlp.c_fc.weight`);
        const n = m.ln2.out.size / C;
        if (dw) matmul(gpu, m.ln2.out.reshape([n, C]), dfc.reshape([n, dfc.size / n]), { transA: true, accumulate: true, out: dw });
        break;
      }
      const dln2 = lin(m.ln2.out, 'mlp.c_fc', dfc);
      lnBack(dln2, m.x2, `h.${l}.ln_2`, m.ln2, dx);
      if (2 * l < stop) break;
      // x2 = x + proj(attn(ln1(x))).
      const at = a.attn!;
      let datt = lin(at.out, 'attn.c_proj', dx);
      if (at.rows) {
        const full = t(gpu.zeros(at.att.out.shape));
        scatterRowsAdd(gpu, datt, at.rows, full);
        datt = full;
        const dxFull = t(gpu.zeros(at.x.shape));
        scatterRowsAdd(gpu, dx, at.rows, dxFull);
        dx = dxFull;
      }
      const dqkv = t(attentionBackward(gpu, datt, at.qkv, at.att.att, NH) as F32);
      const dln1 = lin(at.ln1.out, 'attn.c_attn', dqkv);
      lnBack(dln1, at.x, `h.${l}.ln_1`, at.ln1, dx);
    }
    if (stop < 0) embeddingBackward(gpu, dx, this.#tokens, grads.get('wte.weight') ?? t(gpu.zeros(w('wte.weight').shape)), grads.get('wpe.weight') ?? t(gpu.zeros(w('wpe.weight').shape)));
    for (const x of tmp) x.release();
  }

  release(): void {
    for (const t of this.#owned) t.release();
    this.#owned = [];
  }
}

/** Variants G: an integer ≥ 1; with G > 1 each override shared (the parameter's shape) or, for a block's linear weight, stacked [G, ...shape]. */
function checkVariants(model: GPT2, G: number, overrides: ReadonlyMap<string, Weight> | undefined, adapters: Adapters | undefined): void {
  if (!Number.isInteger(G) || G < 1) throw new RangeError(`GPT2.forward: variants must be a positive integer, got ${G}`);
  if (G === 1) return;
  if (adapters?.size) throw new RangeError('GPT2.forward: LoRA adapters are not supported with variants');
  for (const [name, t] of overrides ?? []) {
    const shape = model.params.get(name)?.shape;
    if (!shape) throw new RangeError(`GPT2.forward: override ${name} is not a parameter of the model`);
    const stackable = /^h\.\d+\.(attn|mlp)\.c_\w+\.weight$/.test(name);
    if (t.shape.join() !== shape.join() && !(stackable && t.shape.join() === [G, ...shape].join())) {
      throw new RangeError(`GPT2.forward: override ${name} is [${t.shape}], not [${shape}]${stackable ? ` or [${G},${shape}] (one per variant)` : ''}`);
    }
  }
}

/** A [.., C] tensor as a [rows, C] view. */
function flat2(x: F32): F32 {
  const c = x.shape.at(-1)!;
  return x.reshape([x.size / c, c]);
}
