// Optimiser ops: AdamW in place (llm.c / PyTorch semantics), and global-norm gradient clipping
// whose norm is reduced deterministically on the GPU (reduce.ts) and handed to the scaling kernel
// as a tensor, so the hot path never waits for a readback; or per group of stacked gradients (G
// adapters trained at once, each clipped by its own norm, as if trained alone).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { expect, noAlias, sameShape } from './check.ts';
import { sumSquares, sumSquaresGroups } from './reduce.ts';
import { elementChunks, elementsOf } from './chunks.ts';

const WG = 256;
const SHADER = 'optimizer.wgsl';
const ADAMW: KernelSpec = {
  shader: SHADER,
  entry: 'adamw',
  params: ['n:u32', 'lr:f32', 'beta1:f32', 'beta2:f32', 'eps:f32', 'weight_decay:f32', 'bc1:f32', 'bc2:f32'],
  constants: { WG },
};
const CLIP_PARAMS = ['n:u32', 'max_norm:f32', 'base:u32', 'seg:u32'];
const SQRT: KernelSpec = { shader: SHADER, entry: 'sqrt_each', params: CLIP_PARAMS, constants: { WG } };
const CLIP: KernelSpec = { shader: SHADER, entry: 'clip_scale', params: CLIP_PARAMS, constants: { WG } };

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
  for (const r of elementChunks(gpu, param)) {
    const [p, g, mr, vr] = [param, grad, m, v].map((t) => elementsOf(t, r));
    gpu.dispatch(ADAMW, {
      params: { n: p!.size, lr, beta1, beta2, eps, weight_decay: weightDecay, bc1: 1 - beta1 ** step, bc2: 1 - beta2 ** step },
      tensors: [p!, g!, mr!, vr!],
      workgroups: gpu.grid(p!.size, WG),
    });
  }
}

/** [1] tensor: the L2 norm of all the tensors taken as one vector (deterministic; see reduce.ts). */
export function globalNorm(gpu: Gpu, xs: readonly Tensor[]): Tensor {
  return norms(gpu, sumSquares(gpu, xs), 'globalNorm');
}

/** Square roots of fresh sums of squares (released). */
function norms(gpu: Gpu, squares: Tensor, label: string): Tensor {
  const out = gpu.empty(squares.shape, 'f32', label);
  gpu.dispatch(SQRT, { params: { n: squares.size, max_norm: 0, base: 0, seg: 1 }, tensors: [squares, out], workgroups: gpu.grid(squares.size, WG) });
  squares.release();
  return out;
}

/**
 * Scales the gradients in place by min(1, maxNorm / (norm + 1e-6)), norm being their global L2
 * norm (torch.nn.utils.clip_grad_norm_). Returns the norm, before clipping, as a [1] tensor for
 * logging; nothing is read back. With `groups` G > 1 every gradient is [G, …] and group g (G
 * stacked adapters' g-th) is clipped by the norm of its own slices alone: the norms come back [G].
 */
export function clipGradNorm(gpu: Gpu, grads: readonly Tensor[], maxNorm: number, groups = 1): Tensor {
  const op = 'clipGradNorm';
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw new RangeError(`${op}: maxNorm must be a positive number, got ${maxNorm}`);
  if (new Set(grads).size !== grads.length) throw new Error(`${op}: a gradient appears twice in the list; it would be counted and scaled twice`);
  const norm = groups === 1 ? globalNorm(gpu, grads) : norms(gpu, sumSquaresGroups(gpu, grads, groups), `${op} per group`);
  for (const grad of grads) {
    const seg = Math.max(1, grad.size / groups);
    for (const r of elementChunks(gpu, grad)) {
      const g = elementsOf(grad, r);
      gpu.dispatch(CLIP, { params: { n: g.size, max_norm: maxNorm, base: r[0], seg }, tensors: [norm, g], workgroups: gpu.grid(g.size, WG) });
    }
  }
  return norm;
}
