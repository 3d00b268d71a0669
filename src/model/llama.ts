// Llama-family models on the GPU (Llama, SmolLM2, Qwen2): RMSNorm, rotary embeddings, grouped-query
// attention, SwiGLU MLP, tied or untied head, q/k/v biases where the config has them. Forward,
// backward and KV-cache decoding through the kernel library, behind the LanguageModel interface.
// Attention reuses GPT-2's fused kernels: q, k, v are rotated (ops/rope.ts), then packed into the
// (N, 3·NH·HD) layout with each kv head repeated for its group (ops/gqa.ts). LoRA adapters
// (PassOptions.adapters) add s·(x·A)·B to the outputs of the linears they name, as on GPT-2.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor, Weight } from '../gpu/tensor.ts';
import { attentionBackward, attentionForward } from '../ops/attention.ts';
import { crossEntropyBackward } from '../ops/crossentropy.ts';
import { decodeAttention, gatherRows, kvFill } from '../ops/decode.ts';
import { add } from '../ops/elementwise.ts';
import { tokenEmbedding, tokenEmbeddingBackward } from '../ops/embedding.ts';
import { gqaPack, gqaUnpack, type Heads } from '../ops/gqa.ts';
import { linear, linearBackward } from '../ops/linear.ts';
import { lmHead, lmHeadBackward } from '../ops/lmhead.ts';
import { loraBackward, loraForward } from '../ops/lora.ts';
import { rmsnormBackward, rmsnormForward, type RmsNormOut } from '../ops/rmsnorm.ts';
import { ropeBackward, ropeForward, type RopeTables } from '../ops/rope.ts';
import { gatherRows as gatherAt, scatterRowsAdd, type RowIndex } from '../ops/rows.ts';
import { swiglu, swigluBackward } from '../ops/swiglu.ts';
import { Rng } from '../util/random.ts';
import { padded, readAndRelease } from './generate.ts';
import { llamaParamSpecs, ropeInvFreq, validateLlama, type LlamaConfig } from './llama-config.ts';
import { checkParams, paramZeros, passDims, passLossAt, readParams, storedAs, uploadWeight, vec, weightsOf, type Decoder, type LanguageModel, type ModelPass, type ParamMap, type PassLoss, type PassOptions, type Prefix, type PrefixPoint, type Tokens, type WeightDtype, type WeightMap, type AdapterGrads, type Adapters } from './lm.ts';

/** A weight by name: an override where there is one, else the model's own (matrices f32 or f16). */
type Weights = (name: string) => Weight;
type U32 = Tensor<'u32'>;

export class Llama implements LanguageModel {
  readonly gpu: Gpu;
  readonly config: LlamaConfig;
  readonly params: WeightMap;
  /** cos/sin of every position's rotary angles (nCtx × HD/2), built once in f64. */
  readonly rope: RopeTables;

  get kind(): string {
    return this.config.modelType;
  }

  constructor(gpu: Gpu, config: LlamaConfig, params: WeightMap) {
    this.gpu = gpu;
    this.config = validateLlama(config);
    checkParams('Llama', llamaParamSpecs(config), params);
    this.params = params;
    this.rope = ropeTables(gpu, config);
  }

  /** A fresh model: N(0, 0.02) weights, residual projections scaled by 1/√(2L), norms at 1; matrices stored as `dtype`. */
  static init(gpu: Gpu, config: LlamaConfig, seed: number, dtype: WeightDtype = 'f32'): Llama {
    validateLlama(config);
    const rng = new Rng(seed);
    const residualStd = 0.02 / Math.sqrt(2 * config.nLayer);
    const arrays = new Map(
      llamaParamSpecs(config).map((s) => {
        const n = s.shape.reduce((a, b) => a * b, 1);
        return [s.name, s.init === 'ones' ? new Float32Array(n).fill(1) : s.init === 'zeros' ? new Float32Array(n) : rng.normalArray(n, s.init === 'residual' ? residualStd : 0.02)];
      }),
    );
    return Llama.fromArrays(gpu, config, arrays, dtype);
  }

  /** A model over host arrays by parameter name, uploaded with its matrices stored as `dtype` (rounded on the host). */
  static fromArrays(gpu: Gpu, config: LlamaConfig, arrays: ReadonlyMap<string, Float32Array>, dtype: WeightDtype = 'f32'): Llama {
    const params: WeightMap = new Map();
    try {
      for (const s of llamaParamSpecs(validateLlama(config))) {
        const a = arrays.get(s.name);
        if (!a) throw new RangeError(`Llama.fromArrays: no array for '${s.name}'`);
        params.set(s.name, uploadWeight(gpu, s.name, a, s.shape, dtype));
      }
      return new Llama(gpu, config, params);
    } catch (e) {
      for (const t of params.values()) t.release();
      throw e;
    }
  }

  /** How the matrices are stored. */
  get dtype(): WeightDtype {
    return storedAs(this.params, 'model.embed_tokens.weight');
  }

  /** `opts.rows` (the head and loss at those rows) and `opts.adapters` are honoured; a shared prefix and batched variants are GPT-2's alone. */
  forward(tokens: Tokens, targets?: Tokens, overrides?: ReadonlyMap<string, Weight>, opts: PassOptions = {}): LlamaPass {
    const unsupported = opts.prefix ? 'a shared prefix' : (opts.variants ?? 1) > 1 ? 'batched variants' : null;
    if (unsupported) throw new RangeError(`Llama.forward: ${unsupported} are not supported on ${this.kind} models`);
    return new LlamaPass(this, tokens, targets, overrides, opts);
  }

  /** Passes always start at the embedding (no shared prefix yet). */
  prefixPoint(): PrefixPoint | null {
    return null;
  }

  prefix(): Prefix {
    throw new RangeError(`Llama.prefix: a shared prefix is not supported on ${this.kind} models`);
  }

  decoder(prompts: readonly (readonly number[])[], maxNew: number, overrides?: ReadonlyMap<string, Weight>): Decoder {
    return new LlamaKvCache(this, prompts, maxNew, overrides);
  }

  zerosLike(): ParamMap {
    return paramZeros(this.gpu, this.params);
  }

  toArrays(): Promise<Map<string, Float32Array>> {
    return readParams(this.gpu, this.params);
  }

  release(): void {
    for (const t of this.params.values()) t.release();
    this.rope.cos.release();
    this.rope.sin.release();
  }
}

function ropeTables(gpu: Gpu, c: LlamaConfig): RopeTables {
  const inv = ropeInvFreq(c);
  const half = inv.length;
  const cos = new Float32Array(c.nCtx * half);
  const sin = new Float32Array(c.nCtx * half);
  for (let t = 0; t < c.nCtx; t++) {
    for (let i = 0; i < half; i++) {
      cos[t * half + i] = Math.cos(t * inv[i]!);
      sin[t * half + i] = Math.sin(t * inv[i]!);
    }
  }
  return { cos: gpu.tensor(cos, [c.nCtx, half], 'f32', 'rope.cos'), sin: gpu.tensor(sin, [c.nCtx, half], 'f32', 'rope.sin') };
}

const headsOf = (c: LlamaConfig): Heads => ({ NH: c.nHead, KVH: c.nKvHead, HD: c.headDim });
const lmHeadName = (c: LlamaConfig) => (c.tied ? 'model.embed_tokens.weight' : 'lm_head.weight');

/** One block's activations (rows N = B·T); the decoder drops them, a pass keeps them for backward. */
interface BlockActs {
  x: F32;
  ln1: RmsNormOut;
  qkv: F32;
  att: F32 | null;
  attOut: F32;
  x2: F32;
  ln2: RmsNormOut;
  gate: F32;
  up: F32;
  act: F32;
  x3: F32;
}

/** Adds an adapter's term to a linear's output y (from its input x), where one is on that weight (by name). */
type Adapt = (x: F32, weight: string, y: F32) => void;
const noAdapt: Adapt = () => {};

const blockTensors = (a: BlockActs): F32[] => [a.ln1.out, a.ln1.rstd, a.qkv, ...(a.att ? [a.att] : []), a.attOut, a.x2, a.ln2.out, a.ln2.rstd, a.gate, a.up, a.act];

/**
 * One transformer block on rows x (N,C) at positions pos (N). `attend` maps the packed, rotated
 * qkv (N, 3·NH·HD) to the attention output (N rows of NH·HD, any shape) and, for a training pass, the probabilities.
 */
function block(gpu: Gpu, c: LlamaConfig, rope: RopeTables, w: Weights, l: number, x: F32, pos: U32, attend: (qkv: F32) => { out: F32; att: F32 | null }, adapt: Adapt = noAdapt): BlockActs {
  const pv = (s: string) => vec(w, `model.layers.${l}.${s}`);
  const bias = (s: string) => (c.qkvBias ? pv(`self_attn.${s}.bias`) : undefined);
  const lin = (x: F32, proj: string, b?: F32) => {
    const name = `model.layers.${l}.${proj}.weight`;
    const y = linear(gpu, x, w(name), b);
    adapt(x, name, y);
    return y;
  };
  const ln1 = rmsnormForward(gpu, x, pv('input_layernorm.weight'), c.rmsEps);
  const q = lin(ln1.out, 'self_attn.q_proj', bias('q_proj'));
  const k = lin(ln1.out, 'self_attn.k_proj', bias('k_proj'));
  const v = lin(ln1.out, 'self_attn.v_proj', bias('v_proj'));
  ropeForward(gpu, q, pos, rope, c.headDim);
  ropeForward(gpu, k, pos, rope, c.headDim);
  const qkv = gqaPack(gpu, q, k, v, headsOf(c));
  for (const t of [q, k, v]) t.release();
  const { out: attOut, att } = attend(qkv);
  const o = lin(attOut.reshape([x.shape[0]!, c.nHead * c.headDim]), 'self_attn.o_proj');
  const x2 = add(gpu, x, o);
  o.release();
  const ln2 = rmsnormForward(gpu, x2, pv('post_attention_layernorm.weight'), c.rmsEps);
  const gate = lin(ln2.out, 'mlp.gate_proj');
  const up = lin(ln2.out, 'mlp.up_proj');
  const act = swiglu(gpu, gate, up);
  const down = lin(act, 'mlp.down_proj');
  const x3 = add(gpu, x2, down);
  down.release();
  return { x, ln1, qkv, att, attOut, x2, ln2, gate, up, act, x3 };
}

/** Logits (N,V) of rows x (N,C), with the final norm's output kept for backward; the head in vocabulary chunks where it exceeds a binding. */
function head(gpu: Gpu, c: LlamaConfig, w: Weights, x: F32): { norm: RmsNormOut; logits: F32 } {
  const norm = rmsnormForward(gpu, x, vec(w, 'model.norm.weight'), c.rmsEps);
  return { norm, logits: lmHead(gpu, norm.out, w(lmHeadName(c))) };
}

/** Positions 0..T-1 of each of B sequences, flattened. */
function trainPositions(gpu: Gpu, B: number, T: number): U32 {
  return gpu.tensor(Uint32Array.from({ length: B * T }, (_, i) => i % T));
}

export class LlamaPass implements ModelPass {
  readonly B: number;
  readonly T: number;
  readonly logits: F32;
  readonly loss: F32 | null;
  readonly hidden: F32[] = [];
  readonly #model: Llama;
  readonly #w: Weights;
  readonly #tokens: Tokens;
  readonly #targets: Tokens | undefined;
  readonly #pos: U32;
  readonly #layers: BlockActs[] = [];
  readonly #final: { x: F32; norm: RmsNormOut };
  /** With rows: the head and the loss run at these positions alone (logits [1, n, V]). */
  readonly #rows: RowIndex | undefined;
  readonly #ceTargets: Tokens | undefined;
  readonly #ce: PassLoss | null;
  readonly #adapters: Adapters | undefined;
  /** x·A of each adapted linear, by weight name: the adapters' backward needs it. */
  readonly #loraH = new Map<string, F32>();
  #owned: Tensor[] = [];

  constructor(model: Llama, tokens: Tokens, targets: Tokens | undefined, overrides?: ReadonlyMap<string, Weight>, { rows, adapters }: PassOptions = {}) {
    const { gpu, config: c } = model;
    const [B, T] = passDims('Llama', tokens, targets, c.nCtx);
    this.B = B;
    this.T = T;
    this.#model = model;
    this.#tokens = tokens;
    this.#targets = targets;
    this.#w = weightsOf(model, overrides);
    const w = this.#w;
    const N = B * T;
    const QC = c.nHead * c.headDim;
    const own = <X extends Tensor>(t: X): X => (this.#owned.push(t), t);
    this.#pos = trainPositions(gpu, B, T);
    this.#owned.push(this.#pos);
    this.#adapters = adapters;
    const adapt: Adapt = (x, name, y) => {
      const f = adapters?.get(name);
      if (f) this.#loraH.set(name, own(loraForward(gpu, x, f, y)));
    };

    let x = tokenEmbedding(gpu, tokens, w('model.embed_tokens.weight'));
    this.#owned.push(x);
    for (let l = 0; l < c.nLayer; l++) {
      const a = block(gpu, c, model.rope, w, l, x, this.#pos, (qkv) => {
        const r = attentionForward(gpu, qkv.reshape([B, T, 3 * QC]), c.nHead);
        return { out: r.out, att: r.att };
      }, adapt);
      this.#owned.push(...blockTensors(a), a.x3);
      this.#layers.push(a);
      this.hidden.push(a.x3.reshape([B, T, c.nEmbd]));
      x = a.x3;
    }
    if (rows && rows.of !== N) throw new RangeError(`Llama.forward: the row index is over ${rows.of} positions, not the ${N} of ${tokens}`);
    this.#rows = rows;
    if (rows) x = own(gatherAt(gpu, x, rows));
    const h = head(gpu, c, w, x);
    this.#final = { x, norm: h.norm };
    this.#owned.push(h.norm.out, h.norm.rstd, h.logits);
    const [lb, lt] = rows ? [1, rows.idx.size] : [B, T];
    this.logits = h.logits.reshape([lb, lt, c.vocabSize]);
    ({ targets: this.#ceTargets, ce: this.#ce } = passLossAt(gpu, this.logits, targets, rows, own));
    this.loss = this.#ce?.mean ?? null;
  }

  get losses(): F32 | null {
    return this.#ce?.losses ?? null;
  }

  /**
   * Accumulates d(loss)/d(param) into `baseGrads` for the parameters it holds (a parameter not in it
   * gets no weight gradient) and stops below the lowest layer one of them, or an adapter, is in.
   * `dlosses` (B,T) weighs each position's loss instead of the mean's 1/count. With adapters in the
   * forward, `adapterGrads` receives theirs too; `baseGrads` null asks for no base gradient (a frozen base).
   */
  backward(baseGrads: ParamMap | null, dlosses?: F32, adapterGrads?: AdapterGrads): void {
    if (!this.#ce || !this.#targets) throw new Error('LlamaPass.backward: the forward had no targets');
    const grads: ReadonlyMap<string, F32> = baseGrads ?? new Map();
    const ungiven = [...(this.#adapters?.keys() ?? [])].find((n) => !adapterGrads?.has(n));
    if (ungiven) throw new Error(`LlamaPass.backward: no adapter gradients given for ${ungiven}`);
    const { gpu, config: c, rope } = this.#model;
    const { B, T } = this;
    const N = B * T;
    const QC = c.nHead * c.headDim;
    const w = this.#w;
    const tmp: Tensor[] = [];
    const t = <X extends Tensor>(x: X): X => (tmp.push(x), x);
    // The layer a tensor is in: the embedding below every layer, the final norm and head above them.
    const layerOf = (name: string) => (name === 'model.embed_tokens.weight' ? -1 : Number(/^model\.layers\.(\d+)\./.exec(name)?.[1] ?? c.nLayer));
    const stop = Math.min(c.nLayer, ...[...grads.keys(), ...(this.#adapters?.keys() ?? [])].map(layerOf));
    // An RMSNorm's input gradient added into dinp; its weight's where wanted (else a scratch one, dropped).
    const norm = (dout: F32, inp: F32, name: string, rstd: F32, dinp: F32) => {
      const dweight = grads.get(name);
      const r = rmsnormBackward(gpu, dout, inp, vec(w, name), rstd, { dinp, ...(dweight ? { dweight } : {}) });
      if (!dweight) t(r.dweight);
    };

    const n = this.#rows ? this.#rows.idx.size : N;
    const dlogits = t(crossEntropyBackward(gpu, this.logits, this.#ceTargets!, this.#ce.lse, dlosses ?? this.#ce.dlosses)).reshape([n, c.vocabSize]);
    const lm = lmHeadName(c);
    const dnorm = t(lmHeadBackward(gpu, this.#final.norm.out, w(lm), dlogits, grads.get(lm)));
    const dx = t(gpu.zeros([N, c.nEmbd]));
    const dxTop = this.#rows ? t(gpu.zeros([n, c.nEmbd])) : dx;
    norm(dnorm, this.#final.x, 'model.norm.weight', this.#final.norm.rstd, dxTop);
    if (this.#rows) scatterRowsAdd(gpu, dxTop, this.#rows, dx);
    for (let l = c.nLayer - 1; l >= Math.max(stop, 0); l--) {
      const a = this.#layers[l]!;
      const name = (s: string) => `model.layers.${l}.${s}`;
      // A linear's backward (dx into opts.dx, else fresh), and its adapter's where there is one.
      const lin = (x: F32, proj: string, dy: F32, opts: { bias?: boolean; dx?: F32 } = {}) => {
        const weight = name(`${proj}.weight`);
        const dxOut = linearBackward(gpu, x, w(weight), dy, { dw: grads.get(weight), dbias: opts.bias ? grads.get(name(`${proj}.bias`)) : undefined, dx: opts.dx });
        const f = this.#adapters?.get(weight);
        if (f) loraBackward(gpu, x, this.#loraH.get(weight)!, f, dy, { ...adapterGrads!.get(weight)!, dx: dxOut });
        return dxOut;
      };
      // x3 = x2 + down(swiglu(gate(ln2), up(ln2))).
      const dact = t(lin(a.act, 'mlp.down_proj', dx));
      const { dgate, dup } = swigluBackward(gpu, a.gate, a.up, dact);
      t(dgate);
      t(dup);
      const dln2 = t(lin(a.ln2.out, 'mlp.gate_proj', dgate));
      lin(a.ln2.out, 'mlp.up_proj', dup, { dx: dln2 });
      norm(dln2, a.x2, name('post_attention_layernorm.weight'), a.ln2.rstd, dx);
      // x2 = x + o(attention(pack(rope(q), rope(k), v))).
      const datt = t(lin(a.attOut.reshape([N, QC]), 'self_attn.o_proj', dx));
      const dqkv = t(attentionBackward(gpu, datt.reshape([B, T, QC]), a.qkv.reshape([B, T, 3 * QC]), a.att!, c.nHead)).reshape([N, 3 * QC]);
      const { dq, dk, dv } = gqaUnpack(gpu, dqkv, headsOf(c));
      for (const d of [dq, dk, dv]) t(d);
      ropeBackward(gpu, dq, this.#pos, rope, c.headDim);
      ropeBackward(gpu, dk, this.#pos, rope, c.headDim);
      const bias = c.qkvBias;
      const dln1 = t(lin(a.ln1.out, 'self_attn.q_proj', dq, { bias }));
      lin(a.ln1.out, 'self_attn.k_proj', dk, { bias, dx: dln1 });
      lin(a.ln1.out, 'self_attn.v_proj', dv, { bias, dx: dln1 });
      norm(dln1, a.x, name('input_layernorm.weight'), a.ln1.rstd, dx);
    }
    const dwte = grads.get('model.embed_tokens.weight');
    if (dwte) tokenEmbeddingBackward(gpu, dx, this.#tokens, dwte);
    for (const x of tmp) x.release();
  }

  release(): void {
    for (const t of this.#owned) t.release();
    this.#owned = [];
  }
}

/** Generation with a cache of every layer's rotated k and v, each kv head stored per query head (B, Tcap, 2·NH·HD). */
class LlamaKvCache implements Decoder {
  readonly #model: Llama;
  readonly #w: Weights;
  readonly #prompts: readonly (readonly number[])[];
  readonly #kv: F32[] = [];
  readonly #next: number[];

  constructor(model: Llama, prompts: readonly (readonly number[])[], maxNew: number, overrides?: ReadonlyMap<string, Weight>) {
    const { gpu, config: c } = model;
    const Tcap = Math.max(...prompts.map((p) => p.length)) + maxNew;
    this.#model = model;
    this.#w = weightsOf(model, overrides);
    this.#prompts = prompts;
    this.#next = prompts.map((p) => p.length);
    try {
      for (let l = 0; l < c.nLayer; l++) this.#kv.push(gpu.zeros([prompts.length, Tcap, 2 * c.nHead * c.headDim], 'f32', `kv cache layer ${l}`));
    } catch (e) {
      for (const t of this.#kv) t.release();
      throw e;
    }
  }

  /** Runs rows x through every block (the residual stream is replaced layer by layer), then the head at `rows`. */
  #run(x: F32, pos: U32, attend: (l: number, qkv: F32) => F32, rows?: U32): F32 {
    const { gpu, config: c, rope } = this.#model;
    for (let l = 0; l < c.nLayer; l++) {
      const a = block(gpu, c, rope, this.#w, l, x, pos, (qkv) => ({ out: attend(l, qkv), att: null }));
      for (const t of blockTensors(a)) t.release();
      x.release();
      x = a.x3;
    }
    const last = rows ? gatherRows(gpu, x, rows) : x;
    const h = head(gpu, c, this.#w, last);
    for (const t of new Set([x, last, h.norm.out, h.norm.rstd])) t.release();
    return h.logits;
  }

  async prefill(): Promise<Float32Array> {
    const { gpu, config: c } = this.#model;
    const B = this.#prompts.length;
    const QC = c.nHead * c.headDim;
    const { T, tokens, last } = padded(gpu, this.#prompts, c.vocabSize);
    const pos = trainPositions(gpu, B, T);
    const x = tokenEmbedding(gpu, tokens, this.#w('model.embed_tokens.weight'));
    const logits = this.#run(
      x,
      pos,
      (l, qkv) => {
        const q3 = qkv.reshape([B, T, 3 * QC]);
        kvFill(gpu, q3, this.#kv[l]!);
        const r = attentionForward(gpu, q3, c.nHead);
        r.att.release();
        return r.out;
      },
      last,
    );
    return readAndRelease(gpu, logits, tokens, last, pos);
  }

  async step(tokens: Uint32Array, active: readonly boolean[]): Promise<Float32Array> {
    const { gpu, config: c } = this.#model;
    const bad = tokens.findIndex((id) => id >= c.vocabSize);
    if (bad >= 0) throw new RangeError(`generate: token id ${tokens[bad]} of sequence ${bad} is out of range for a vocabulary of ${c.vocabSize}`);
    const posArr = Uint32Array.from(this.#next);
    active.forEach((a, b) => a && this.#next[b]!++);
    const ids = gpu.tensor(tokens);
    const pos = gpu.tensor(posArr);
    const T = Math.max(...posArr) + 1;
    const x = gatherRows(gpu, this.#w('model.embed_tokens.weight'), ids);
    const logits = this.#run(x, pos, (l, qkv) => decodeAttention(gpu, qkv, this.#kv[l]!, pos, T, c.nHead));
    return readAndRelease(gpu, logits, ids, pos);
  }

  release(): void {
    for (const t of this.#kv) t.release();
  }
}
