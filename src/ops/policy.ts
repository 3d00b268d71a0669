// The policy network's own small ops (shaders/policy.wgsl), forward and backward side by side:
// ReLU and the Gaussian sample a = μ + exp(log σ)⊙ε. The linear layers are matmul.ts's.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, outputLike, sameShape } from './check.ts';

const WG = 256;
const spec = (entry: string): KernelSpec => ({ shader: 'policy.wgsl', entry, params: ['n:u32', 'D:u32'], constants: { WG } });
const RELU = spec('relu');
const RELU_BACKWARD = spec('relu_backward');
const SAMPLE = spec('gaussian_sample');

/** out = max(x, 0); a NaN stays NaN. */
export function relu(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  expect('relu', 'x', x, x.shape);
  const o = outputLike(gpu, 'relu', x, out);
  gpu.dispatch(RELU, { params: { n: x.size, D: 1 }, tensors: [x, o], workgroups: gpu.grid(x.size, WG) });
  return o;
}

/**
 * out = dy where y > 0, else 0, for y = relu(x) (or x itself: both are positive at the same places,
 * so the forward need keep only its output). The subgradient at exactly 0 is 0, as in PyTorch; a
 * NaN in y gives NaN.
 */
export function reluBackward(gpu: Gpu, y: Tensor, dy: Tensor, out?: Tensor): Tensor {
  expect('reluBackward', 'y', y, y.shape);
  sameShape('reluBackward', y, dy, ['y', 'dy']);
  const o = outputLike(gpu, 'reluBackward', y, out, dy);
  gpu.dispatch(RELU_BACKWARD, { params: { n: y.size, D: 1 }, tensors: [y, dy, o], workgroups: gpu.grid(y.size, WG) });
  return o;
}

/** actions [N, D] = μ + exp(log σ) ⊙ noise, log σ [D] shared by every row, noise standard normal. */
export function gaussianSample(gpu: Gpu, mu: Tensor, logStd: Tensor, noise: Tensor, out?: Tensor): Tensor {
  const op = 'gaussianSample';
  if (mu.shape.length !== 2) throw new ShapeError(`${op}: mu must be 2-D [N, D], got ${mu}`);
  const D = mu.shape[1]!;
  expect(op, 'mu', mu, [-1, D]);
  expect(op, 'logStd', logStd, [D]);
  sameShape(op, mu, noise, ['mu', 'noise']);
  const o = outputLike(gpu, op, mu, out, logStd, noise);
  gpu.dispatch(SAMPLE, { params: { n: mu.size, D: Math.max(D, 1) }, tensors: [mu, logStd, noise, o], workgroups: gpu.grid(mu.size, WG) });
  return o;
}
