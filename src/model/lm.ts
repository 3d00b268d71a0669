// The language-model interface tasks/ and seal/ work through: GPT-2 (gpt2.ts) and the Llama family
// (llama.ts) both implement it. Parameters are GPU tensors under Hugging Face's names, a forward
// returns a Pass that owns its activations, and its backward accumulates every parameter's gradient
// (the gradient convention, docs/ARCHITECTURE.md). Generation goes through a Decoder the model makes.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor, Weight } from '../gpu/tensor.ts';
import { f16ToF32, f32ToF16, type SafetensorsFile, type TensorToWrite } from '../io/safetensors.ts';
import { crossEntropyForward, crossEntropyMean } from '../ops/crossentropy.ts';
import type { LoraFactors } from '../ops/lora.ts';
import { gatherRows, type RowIndex } from '../ops/rows.ts';

export type Tokens = Tensor<'u32'>;
/** Gradients, optimizer moments and edited copies: always f32. */
export type ParamMap = Map<string, F32>;
/** A model's own weights: f32, or with --dtype f16 every matrix in f16 (vectors stay f32). */
export type WeightMap = Map<string, Weight>;
export type WeightDtype = 'f32' | 'f16';
/** LoRA adapters by the weight they adapt (e.g. `h.0.mlp.c_fc.weight`, `model.layers.0.self_attn.q_proj.weight`); model/lora.ts makes them. */
export type Adapters = ReadonlyMap<string, LoraFactors>;
/** Their gradients, by the same names. */
export type AdapterGrads = ReadonlyMap<string, { da: F32; db: F32 }>;

export interface PassOptions {
  /** Start from this shared prefix of the same tokens instead of the embedding. */
  prefix?: Prefix;
  /**
   * Only these positions (of the B·T) carry a loss: the last block's attention still reads every
   * position, but from its output projection on, the pass runs on these rows alone. logits are then
   * [1, n, V] and losses [1, n] in the index's order; backward's dlosses is [1, n].
   */
  rows?: RowIndex;
  /** LoRA adapters: y += s·(x·A)·B on the linears they name. */
  adapters?: Adapters;
  /**
   * G variants of the model on the same tokens, run as one batch of G·B sequences: an override of
   * a block's linear weight may be stacked [G, ...shape], copy g being variant g's (used through
   * the batched matmul); other overrides and every other weight are shared. tokens, targets,
   * prefix and rows are one variant's; the pass's logits and losses hold the variants one after
   * another (G·B sequences, or G·n rows). Forward only.
   */
  variants?: number;
}

/** A point in the residual stream: before block `layer`'s ln_1, or (mlp) before its ln_2. */
export interface PrefixPoint {
  layer: number;
  mlp: boolean;
}

/** The residual stream of some tokens at a point, under the base weights (LanguageModel.prefix). */
export interface Prefix {
  at: PrefixPoint;
  tokens: Tokens;
  x: F32;
}


/** What every architecture's config says, under one set of names. */
export interface ModelDims {
  vocabSize: number;
  /** Context length (positions). */
  nCtx: number;
  nLayer: number;
  /** Width of the residual stream. */
  nEmbd: number;
}

export interface ModelPass {
  readonly B: number;
  readonly T: number;
  /** Logits (B,T,V). */
  readonly logits: F32;
  /** Mean loss over targeted positions ([1]); only with targets. */
  readonly loss: F32 | null;
  /** Residual stream after each block (B,T,C): the hidden states for context features. */
  readonly hidden: readonly F32[];
  /** Per-position losses (B,T), 0 where ignored; only with targets. */
  readonly losses: F32 | null;
  /**
   * Accumulates d(loss)/d(param) into `grads` for the parameters it holds (a map like zerosLike(),
   * or part of one; a parameter not in it gets no gradient). `dlosses` (B,T) weighs each position's
   * loss instead of the mean's 1/count: the gradient of Σ dlosses·losses. With adapters in the
   * forward, `adapterGrads` receives theirs (one for each adapter); `grads` null asks for no base
   * gradient (a frozen base).
   */
  backward(grads: ParamMap | null, dlosses?: F32, adapterGrads?: AdapterGrads): void;
  release(): void;
}

/** Incremental decoding with a KV cache (generate.ts drives it). */
export interface Decoder {
  /** Logits (B×V, row-major) at each prompt's last position. */
  prefill(): Promise<Float32Array>;
  /** Feeds one token per active sequence; logits at each sequence's newest position. */
  step(tokens: Uint32Array, active: readonly boolean[]): Promise<Float32Array>;
  release(): void;
}

export interface LanguageModel {
  /** The architecture, as Hugging Face's config.json names it. */
  readonly kind: string;
  readonly gpu: Gpu;
  readonly config: ModelDims;
  readonly params: WeightMap;
  /** How the weight matrices are stored (--dtype). */
  readonly dtype: WeightDtype;
  /**
   * Runs the model on tokens (B,T). With targets (B,T; IGNORE_INDEX where no loss), the pass holds
   * the mean cross-entropy in `loss` and can run backward. `overrides` swap in edited copies of some
   * tensors for this pass without touching the model's own.
   */
  forward(tokens: Tokens, targets?: Tokens, overrides?: ReadonlyMap<string, Weight>, opts?: PassOptions): ModelPass;
  /** Where a pass may start when only these tensors are overridden or differentiated (null: at the embedding). */
  prefixPoint(names: Iterable<string>): PrefixPoint | null;
  /** The residual stream of `tokens` under the model's own weights up to `at`, shared by passes that start there. */
  prefix(tokens: Tokens, at: PrefixPoint): Prefix;
  /** A KV-cache decoder over right-padded prompts, room for maxNew more tokens each. */
  decoder(prompts: readonly (readonly number[])[], maxNew: number, overrides?: ReadonlyMap<string, Weight>): Decoder;
  /** Zeroed tensors shaped like the parameters, e.g. gradients or optimizer moments. */
  zerosLike(): ParamMap;
  /** The weights as f32 host arrays (f16 ones widened). */
  toArrays(): Promise<Map<string, Float32Array>>;
  release(): void;
}

/** A weight on the GPU as the model stores it: matrices as `dtype` (rounded on the host), vectors f32. */
export function uploadWeight(gpu: Gpu, name: string, data: Float32Array, shape: readonly number[], dtype: WeightDtype): Weight {
  return dtype === 'f16' && shape.length >= 2 ? gpu.tensor(f32ToF16(data), shape, 'f16', name) : gpu.tensor(data, shape, 'f32', name);
}

/** A norm's or a bias's weight by name: vectors are f32 however the matrices are stored, and so are edited copies. */
export const vec = (w: (name: string) => Weight, name: string) => w(name) as F32;

/** How a model stores its matrices, read off one of them. */
export const storedAs = (params: WeightMap, matrix: string): WeightDtype => (params.get(matrix)!.dtype === 'f16' ? 'f16' : 'f32');

/** The weight a pass uses: an override where there is one, else the model's own. */
export const weightsOf =
  (model: Pick<LanguageModel, 'params'>, overrides?: ReadonlyMap<string, Weight>) =>
  (name: string): Weight =>
    overrides?.get(name) ?? model.params.get(name)!;

/** The most positions one pass can score: its logits (rows × V, f32) must fit one storage binding. */
export function logitRows(model: Pick<LanguageModel, 'gpu' | 'config'>): number {
  return Math.floor(model.gpu.limits.maxStorageBufferBindingSize / (4 * model.config.vocabSize));
}

/** Zeroed tensors shaped like the parameters, e.g. gradients or optimizer moments. */
export function paramZeros(gpu: Gpu, params: ReadonlyMap<string, Weight>): ParamMap {
  return new Map([...params].map(([k, t]) => [k, gpu.zeros(t.shape, 'f32', `${k}.grad`)]));
}

/** Every parameter read back as f32 (f16 ones widened), by name. */
export async function readParams(gpu: Gpu, params: ReadonlyMap<string, Weight>): Promise<Map<string, Float32Array>> {
  const names = [...params.keys()];
  const data = await gpu.readMany(names.map((n) => params.get(n)!));
  return new Map(names.map((n, i) => [n, data[i] instanceof Uint16Array ? f16ToF32(data[i]) : (data[i] as Float32Array)]));
}

/** A model's weights (f16 ones widened to f32: a file's format is one dtype) and AdamW's moments (`adam.m.*`, `adam.v.*`), named for a checkpoint file. */
export async function trainingTensors(model: LanguageModel, optimizer?: { m: ParamMap; v: ParamMap }): Promise<[string, TensorToWrite][]> {
  const weights = await model.toArrays();
  const tensors: [string, TensorToWrite][] = [...weights].map(([n, data]) => [n, { shape: model.params.get(n)!.shape, data }]);
  const moments: [string, ParamMap][] = optimizer ? [['adam.m.', optimizer.m], ['adam.v.', optimizer.v]] : [];
  const names = moments.flatMap(([prefix, map]) => [...map.keys()].map((k) => [prefix + k, map.get(k)!] as const));
  const data = await model.gpu.readMany(names.map(([, t]) => t));
  tensors.push(...names.map(([n, t], i): [string, TensorToWrite] => [n, { shape: t.shape, data: data[i] as Float32Array }]));
  return tensors;
}

/** Tensors of `specs` under a prefix ('' for the weights, `adam.m.` / `adam.v.` for the moments), uploaded as `dtype` (moments f32); on a failure nothing stays allocated. */
export async function readTraining<T extends Weight>(gpu: Gpu, f: SafetensorsFile, specs: readonly { name: string; shape: readonly number[] }[], prefix: string, dtype: WeightDtype): Promise<Map<string, T>> {
  const map = new Map<string, T>();
  try {
    for (const s of specs) map.set(s.name, uploadWeight(gpu, prefix + s.name, await f.getFinite(prefix + s.name, s.shape), s.shape, dtype) as T);
  } catch (e) {
    for (const t of map.values()) t.release();
    throw e;
  }
  return map;
}

/** A pass's loss: per-position cross-entropy, its mean over targeted positions, and what backward needs. */
export interface PassLoss {
  losses: F32;
  lse: F32;
  /** d(mean)/d(losses): 1/count where targeted. */
  dlosses: F32;
  mean: F32;
}

export function passLoss(gpu: Gpu, logits: F32, targets: Tokens): PassLoss {
  const ce = crossEntropyForward(gpu, logits, targets);
  return { ...ce, ...crossEntropyMean(gpu, ce.losses, targets) };
}

/**
 * A pass's loss over its logits: at `rows` the targets are gathered there ([1, n], as the logits
 * are), else taken whole; none without targets. `own` keeps what the pass must release.
 */
export function passLossAt(gpu: Gpu, logits: F32, targets: Tokens | undefined, rows: RowIndex | undefined, own: <X extends Tensor>(t: X) => X, variants = 1): { targets: Tokens | undefined; ce: PassLoss | null } {
  const at = !targets ? targets : rows ? own(gatherRows(gpu, targets.reshape([targets.size]), rows, variants)).reshape([1, variants * rows.idx.size]) : variants > 1 ? own(repeat(gpu, targets, variants)) : targets;
  if (!at) return { targets: at, ce: null };
  const ce = passLoss(gpu, logits, at);
  for (const t of [ce.losses, ce.lse, ce.dlosses, ce.mean]) own(t);
  return { targets: at, ce };
}

/** G copies of x one after another along its first dimension ([G·d0, ...]): a batched pass's shared input. */
export function repeat<D extends Tensor['dtype']>(gpu: Gpu, x: Tensor<D>, G: number): Tensor<D> {
  const out = gpu.empty([G * x.shape[0]!, ...x.shape.slice(1)], x.dtype) as Tensor<D>;
  for (let g = 0; g < G; g++) gpu.copy(x, out.view(g * x.size, x.shape));
  return out;
}

/** B and T of a forward's tokens (B,T), checked against the context and the targets' shape. */
export function passDims(who: string, tokens: Tokens, targets: Tokens | undefined, nCtx: number): [number, number] {
  if (tokens.shape.length !== 2) throw new RangeError(`${who}.forward: tokens must be [B×T], got ${tokens}`);
  const [B, T] = tokens.shape as [number, number];
  if (T > nCtx) throw new RangeError(`${who}.forward: T = ${T} is longer than the context (${nCtx})`);
  if (targets && targets.shape.join() !== tokens.shape.join()) throw new RangeError(`${who}.forward: targets ${targets} must match tokens ${tokens}`);
  return [B, T];
}

/** Every parameter the config lists is given, in its shape (`who` names the model in the error). */
export function checkParams(who: string, specs: readonly { name: string; shape: readonly number[] }[], params: ReadonlyMap<string, Tensor>): void {
  for (const s of specs) {
    const t = params.get(s.name);
    if (!t) throw new RangeError(`${who}: missing parameter ${s.name}`);
    if (t.shape.join() !== s.shape.join()) throw new RangeError(`${who}: ${s.name} has shape [${t.shape}], config needs [${s.shape}]`);
  }
}
