// What a model needs on the GPU, estimated from its config before anything is allocated, so that a
// model too large for the adapter is a one-line error instead of an out-of-memory failure midway.
// Tensors over one storage binding are split by the ops (ops/chunks.ts); what remains is that every
// tensor fits one buffer (maxBufferSize) and that all of them fit the memory there is.
import type { Gpu } from '../gpu/gpu.ts';
import { fmtShape, numel } from '../gpu/tensor.ts';
import { UserError } from '../util/errors.ts';
import { paramSpecs, type GPT2Config } from './config.ts';
import { llamaParamSpecs, type LlamaConfig } from './llama-config.ts';

/** Either family's config (a Llama-family one names its model_type). */
export type ModelConfig = GPT2Config | LlamaConfig;

/** What the estimate needs of a family: its parameters' shapes and f32 activations per position and layer over T positions. */
function sizes(config: ModelConfig): { specs: { name: string; shape: readonly number[] }[]; perLayer: (T: number) => number } {
  if ('modelType' in config) {
    const { nEmbd: C, nHead: NH, nKvHead: KVH, headDim: HD, intermediate: I } = config;
    const [QC, KC] = [NH * HD, KVH * HD];
    // Kept: ln1 and ln2 (each C + rstd), x2, x3, packed qkv (3·QC), probabilities (NH·T), attention
    // out (QC), gate, up, act (3·I); transient: q, k, v before packing (QC + 2·KC).
    return { specs: llamaParamSpecs(config), perLayer: (T) => 4 * C + 2 + 3 * QC + NH * T + QC + 3 * I + QC + 2 * KC };
  }
  const { nEmbd: C, nHead: NH } = config;
  return { specs: paramSpecs(config), perLayer: (T) => 17 * C + NH * T + 4 };
}

/** Parameters of either family's config. */
export const paramCountOf = (config: ModelConfig) => sizes(config).specs.reduce((s, p) => s + numel(p.shape), 0);

/** What a command does with the model, for the estimate. */
export interface ModelUse {
  /** Gradients of every weight (a backward pass), and AdamW's two moments over every weight. */
  train: 'none' | 'grads' | 'adam';
  /** The largest batch one forward runs: sequences × positions. */
  batch: number;
  seq: number;
}

/**
 * Scoring text 16 lines at a time, as eval's forgetting probe does. On GPT-2 small this estimates
 * 1.8 GB; `seal eval --methods base --passages 1` held at most 1.57 GB (peakGpuBytes).
 */
export const INFERENCE: ModelUse = { train: 'none', batch: 16, seq: 96 };

export interface MemoryEstimate {
  weights: number;
  /** f32 masters of f16 weights, when training updates them. */
  master: number;
  grads: number;
  optimizer: number;
  activations: number;
  total: number;
}

/**
 * Bytes of weights (matrices as `dtype`, vectors f32), gradients, optimizer moments (and f32 masters
 * of f16 weights) and one batch's activations (f32). Activations per position and layer (sizes()):
 * the residual stream, the norms, qkv, attention out and its T probabilities per head, the
 * projections, the MLP's hidden activations; then the logits and their gradient.
 */
export function estimateMemory(config: ModelConfig, use: ModelUse, dtype: 'f32' | 'f16' = 'f32'): MemoryEstimate {
  const { specs, perLayer: layer } = sizes(config);
  const params = specs.reduce((s, p) => s + numel(p.shape), 0);
  const matrices = specs.reduce((s, p) => s + (p.shape.length === 2 ? numel(p.shape) : 0), 0);
  const { nLayer: L, nEmbd: C, vocabSize: V } = config;
  const T = Math.min(use.seq, config.nCtx);
  const positions = use.batch * T;
  const perLayer = layer(T);
  const weights = 4 * params - (dtype === 'f16' ? 2 * matrices : 0);
  const grads = use.train === 'none' ? 0 : 4 * params;
  const optimizer = use.train === 'adam' ? 8 * params : 0;
  const master = use.train === 'adam' && dtype === 'f16' ? 4 * matrices : 0;
  const activations = 4 * positions * (L * perLayer + (use.train === 'none' ? 1 : 2) * V + 4 * C);
  return { weights, master, grads, optimizer, activations, total: weights + master + grads + optimizer + activations };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/**
 * Refuses, naming needed against available, a model that cannot fit: a tensor over maxBufferSize,
 * or an estimate over the memory there is. Call it before allocating the model.
 */
export function checkFits(gpu: Pick<Gpu, 'limits' | 'summary' | 'availableMemory'>, what: string, config: ModelConfig, use: ModelUse, dtype: 'f32' | 'f16' = 'f32'): MemoryEstimate {
  const maxBuffer = gpu.limits.maxBufferSize;
  for (const p of sizes(config).specs) {
    const bytes = 4 * numel(p.shape);
    if (bytes > maxBuffer) throw new UserError(`${what}: tensor '${p.name}' ${fmtShape(p.shape)} needs ${bytes} bytes as f32, over this adapter's maxBufferSize of ${maxBuffer} bytes`);
  }
  const e = estimateMemory(config, use, dtype);
  // Known for a CPU adapter (the system's memory) or when SEAL_GPU_MEMORY says (io/dawn.ts); WebGPU does not tell a GPU's.
  const available = gpu.availableMemory;
  if (available !== null && e.total > available) {
    const parts = [`weights ${mib(e.weights)}${dtype === 'f16' ? ' (f16)' : ''}`, e.master ? `f32 masters ${mib(e.master)}` : '', e.grads ? `gradients ${mib(e.grads)}` : '', e.optimizer ? `optimizer ${mib(e.optimizer)}` : '', `activations ${mib(e.activations)}`].filter(Boolean).join(', ');
    throw new UserError(`${what}: the model needs about ${mib(e.total)} of GPU memory (${parts}) but ${mib(available)} are available on ${gpu.summary.description || 'this adapter'}; use a smaller model or batch${dtype === 'f32' ? ', or --dtype f16' : ''}`);
  }
  return e;
}
