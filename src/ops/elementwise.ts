// Elementwise ops, the activations GELU and ReLU among them. Gradients are trivial (add passes through, mul swaps operands), so the
// backward of `mul` is two `mul`s and of `add` an identity/scale; callers compose them.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { expect, noAlias, outputLike, sameShape } from './check.ts';

const WG = 256;
const spec = (entry: string): KernelSpec => ({ shader: 'elementwise.wgsl', entry, params: ['n:u32', 'alpha:f32'], constants: { WG } });
const ADD = spec('add');
const MUL = spec('mul');
const SCALE = spec('scale');
const AXPY = spec('axpy');
const GELU = spec('gelu');
const GELU_BACKWARD = spec('gelu_backward');
const RELU = spec('relu');
const RELU_BACKWARD = spec('relu_backward');

/** out = a + alpha·b */
export function add(gpu: Gpu, a: Tensor, b: Tensor, alpha = 1, out?: Tensor): Tensor {
  expect('add', 'a', a, a.shape);
  sameShape('add', a, b);
  const o = outputLike(gpu, 'add', a, out, b);
  gpu.dispatch(ADD, { params: { n: a.size, alpha }, tensors: [a, b, o], workgroups: gpu.grid(a.size, WG) });
  return o;
}

/** out = a ⊙ b */
export function mul(gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  expect('mul', 'a', a, a.shape);
  sameShape('mul', a, b);
  const o = outputLike(gpu, 'mul', a, out, b);
  gpu.dispatch(MUL, { params: { n: a.size, alpha: 1 }, tensors: [a, b, o], workgroups: gpu.grid(a.size, WG) });
  return o;
}

/** out = alpha·x */
export function scale(gpu: Gpu, x: Tensor, alpha: number, out?: Tensor): Tensor {
  expect('scale', 'x', x, x.shape);
  const o = outputLike(gpu, 'scale', x, out);
  gpu.dispatch(SCALE, { params: { n: x.size, alpha }, tensors: [x, o], workgroups: gpu.grid(x.size, WG) });
  return o;
}

/** y += alpha·x, in place; returns y. */
export function axpy(gpu: Gpu, alpha: number, x: Tensor, y: Tensor): Tensor {
  expect('axpy', 'x', x, x.shape);
  sameShape('axpy', x, y, ['x', 'y']);
  noAlias('axpy', y, x);
  gpu.dispatch(AXPY, { params: { n: x.size, alpha }, tensors: [x, y], workgroups: gpu.grid(x.size, WG) });
  return y;
}

/** out = gelu(x), GPT-2's tanh form. */
export function gelu(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  expect('gelu', 'x', x, x.shape);
  const o = outputLike(gpu, 'gelu', x, out);
  gpu.dispatch(GELU, { params: { n: x.size, alpha: 1 }, tensors: [x, o], workgroups: gpu.grid(x.size, WG) });
  return o;
}

/** out = dout ⊙ gelu'(x). Overwrites out, like the other ops here (callers add it where they sum). */
export function geluBackward(gpu: Gpu, x: Tensor, dout: Tensor, out?: Tensor): Tensor {
  expect('geluBackward', 'x', x, x.shape);
  sameShape('geluBackward', x, dout, ['x', 'dout']);
  const o = outputLike(gpu, 'geluBackward', x, out, dout);
  gpu.dispatch(GELU_BACKWARD, { params: { n: x.size, alpha: 1 }, tensors: [x, dout, o], workgroups: gpu.grid(x.size, WG) });
  return o;
}

/** out = max(x, 0); a NaN stays NaN. */
export function relu(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  expect('relu', 'x', x, x.shape);
  const o = outputLike(gpu, 'relu', x, out);
  gpu.dispatch(RELU, { params: { n: x.size, alpha: 1 }, tensors: [x, o], workgroups: gpu.grid(x.size, WG) });
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
  gpu.dispatch(RELU_BACKWARD, { params: { n: y.size, alpha: 1 }, tensors: [y, dy, o], workgroups: gpu.grid(y.size, WG) });
  return o;
}
