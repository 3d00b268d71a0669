// What a model needs on the GPU, estimated from its config before anything is allocated, so that a
// model too large for the adapter is a one-line error instead of an out-of-memory failure midway.
// Tensors over one storage binding are split by the ops (ops/chunks.ts); what remains is that every
// tensor fits one buffer (maxBufferSize) and that all of them fit the memory there is.
import type { Gpu } from '../gpu/gpu.ts';
import { fmtShape, numel } from '../gpu/tensor.ts';
import { UserError } from '../util/errors.ts';
import { paramSpecs, type GPT2Config } from './config.ts';

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
 * of f16 weights) and one batch's activations (f32). Activations
 * per position and layer: the residual stream, two LayerNorms, qkv, attention out and its T
 * probabilities per head, the projections, the MLP's 4C twice; then the logits and their gradient.
 */
export function estimateMemory(config: GPT2Config, use: ModelUse, dtype: 'f32' | 'f16' = 'f32'): MemoryEstimate {
  const specs = paramSpecs(config);
  const params = specs.reduce((s, p) => s + numel(p.shape), 0);
  const matrices = specs.reduce((s, p) => s + (p.shape.length === 2 ? numel(p.shape) : 0), 0);
  const { nLayer: L, nHead: NH, nEmbd: C, vocabSize: V } = config;
  const T = Math.min(use.seq, config.nCtx);
  const positions = use.batch * T;
  const perLayer = 17 * C + NH * T + 4;
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
export function checkFits(gpu: Pick<Gpu, 'limits' | 'summary' | 'availableMemory'>, what: string, config: GPT2Config, use: ModelUse, dtype: 'f32' | 'f16' = 'f32'): MemoryEstimate {
  const maxBuffer = gpu.limits.maxBufferSize;
  for (const p of paramSpecs(config)) {
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
