// Optimiser ops: AdamW in place (llm.c / PyTorch semantics), and global-norm gradient clipping
// whose norm is reduced deterministically on the GPU and handed to the scaling kernel as a tensor,
// so the hot path never waits for a readback.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { expect, noAlias, sameShape } from './check.ts';

const WG = 256;
const ITEMS = 16;
const CHUNK = WG * ITEMS;
const SHADER = 'optimizer.wgsl';
const ADAMW: KernelSpec = {
  shader: SHADER,
  entry: 'adamw',
  params: ['n:u32', 'lr:f32', 'beta1:f32', 'beta2:f32', 'eps:f32', 'weight_decay:f32', 'bc1:f32', 'bc2:f32'],
  constants: { WG },
};
const SUMSQ: KernelSpec = { shader: SHADER, entry: 'sumsq_partials', params: ['offset:u32', 'n:u32', 'first:u32'], constants: { WG, ITEMS } };
const REDUCE: KernelSpec = { shader: SHADER, entry: 'reduce_sum', params: ['count:u32', 'scale:f32', 'root:u32'], constants: { WG } };
const CLIP: KernelSpec = { shader: SHADER, entry: 'clip_scale', params: ['n:u32', 'max_norm:f32'], constants: { WG } };

export interface AdamWConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled: param -= lr·weightDecay·param. PyTorch's AdamW default is 0.01. */
  weightDecay?: number;
}

/** One AdamW step at step number `step` (1-based, for bias correction); updates param, m and v in place. */
export function adamw(gpu: Gpu, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, step: number, cfg: AdamWConfig): void {
  const op = 'adamw';
  expect(op, 'param', param, param.shape);
  sameShape(op, param, grad, ['param', 'grad']);
  sameShape(op, param, m, ['param', 'm']);
  sameShape(op, param, v, ['param', 'v']);
  noAlias(op, param, grad, m, v);
  noAlias(op, m, grad, v);
  noAlias(op, v, grad);
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`${op}: step must be an integer ≥ 1, got ${step}`);
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01 } = cfg;
  gpu.dispatch(ADAMW, {
    params: { n: param.size, lr, beta1, beta2, eps, weight_decay: weightDecay, bc1: 1 - beta1 ** step, bc2: 1 - beta2 ** step },
    tensors: [param, grad, m, v],
    workgroups: gpu.grid(param.size, WG),
  });
}

/** `length` elements of a flat tensor from `offset`. */
export interface Span {
  tensor: Tensor;
  offset: number;
  length: number;
}

function spanOf(op: string, x: Tensor | Span): Span {
  const s = 'tensor' in x ? x : { tensor: x, offset: 0, length: x.size };
  expect(op, 'tensor', s.tensor, s.tensor.shape);
  if (!Number.isInteger(s.offset) || !Number.isInteger(s.length) || s.offset < 0 || s.length < 0 || s.offset + s.length > s.tensor.size) {
    throw new RangeError(`${op}: span [${s.offset}, ${s.offset + s.length}) is outside ${s.tensor}`);
  }
  return s;
}

/**
 * out[0] = scale · Σ x² over all spans (or its square root). Each span is cut into fixed chunks
 * summed by one workgroup each; one workgroup then sums the partials: the same bits every run.
 */
function sumSquares(gpu: Gpu, op: string, xs: readonly (Tensor | Span)[], scale: number, root: boolean): Tensor {
  const spans = xs.map((x) => spanOf(op, x));
  const count = spans.reduce((n, s) => n + Math.ceil(s.length / CHUNK), 0);
  const partials = gpu.empty([Math.max(count, 1)], 'f32', `${op}.partials`);
  let first = 0;
  for (const s of spans) {
    gpu.dispatch(SUMSQ, { params: { offset: s.offset, n: s.length, first }, tensors: [s.tensor, partials], workgroups: gpu.grid(s.length, CHUNK) });
    first += Math.ceil(s.length / CHUNK);
  }
  const out = reduceSum(gpu, partials, scale, root, count);
  partials.release();
  return out;
}

/** [1] tensor: scale · Σ x² over the tensors or spans. */
export function squaredNorm(gpu: Gpu, xs: readonly (Tensor | Span)[], scale = 1): Tensor {
  return sumSquares(gpu, 'squaredNorm', xs, scale, false);
}

/** [1] tensor: the L2 norm of all the tensors taken as one vector. */
export function globalNorm(gpu: Gpu, xs: readonly (Tensor | Span)[]): Tensor {
  return sumSquares(gpu, 'globalNorm', xs, 1, true);
}

/**
 * [1] tensor: scale · Σ x[0..count) (or its square root). One workgroup does it all, so it is
 * meant for short vectors such as partial sums.
 */
export function reduceSum(gpu: Gpu, x: Tensor, scale = 1, root = false, count = x.size): Tensor {
  expect('reduceSum', 'x', x, x.shape);
  if (!Number.isInteger(count) || count < 0 || count > x.size) throw new RangeError(`reduceSum: count ${count} is outside ${x}`);
  const out = gpu.empty([1], 'f32');
  gpu.dispatch(REDUCE, { params: { count, scale, root: root ? 1 : 0 }, tensors: [x, out], workgroups: [1] });
  return out;
}

/**
 * Scales the gradients in place by min(1, maxNorm / (norm + 1e-6)), norm being their global L2
 * norm (torch.nn.utils.clip_grad_norm_). Returns the norm, before clipping, as a [1] tensor for
 * logging; nothing is read back.
 */
export function clipGradNorm(gpu: Gpu, grads: readonly Tensor[], maxNorm: number): Tensor {
  const op = 'clipGradNorm';
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw new RangeError(`${op}: maxNorm must be a positive number, got ${maxNorm}`);
  if (new Set(grads).size !== grads.length) throw new Error(`${op}: a gradient appears twice in the list; it would be counted and scaled twice`);
  const norm = sumSquares(gpu, op, grads, 1, true);
  for (const g of grads) {
    gpu.dispatch(CLIP, { params: { n: g.size, max_norm: maxNorm }, tensors: [norm, g], workgroups: gpu.grid(g.size, WG) });
  }
  return norm;
}
