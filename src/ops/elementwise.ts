// Elementwise ops, the activations GELU and ReLU among them. Gradients are trivial (add passes
// through, mul swaps operands), so the backward of `mul` is two `mul`s and of `add` an
// identity/scale; callers compose them. Gradient convention (docs/ARCHITECTURE.md): geluBackward and
// reluBackward are given no gradient buffer, so each returns its activation gradient as a fresh tensor.
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
export const gelu = (gpu: Gpu, x: Tensor, out?: Tensor): Tensor => activation(gpu, 'gelu', GELU, x, out);

/** A fresh dout ⊙ gelu'(x). */
export const geluBackward = (gpu: Gpu, x: Tensor, dout: Tensor): Tensor => activationBackward(gpu, 'geluBackward', GELU_BACKWARD, x, dout, ['x', 'dout']);

/** out = max(x, 0); a NaN stays NaN. */
export const relu = (gpu: Gpu, x: Tensor, out?: Tensor): Tensor => activation(gpu, 'relu', RELU, x, out);

/**
 * A fresh dx = dy where y > 0, else 0, for y = relu(x) (or x itself: both are positive at the same
 * places, so the forward need keep only its output). The subgradient at exactly 0 is 0, as in
 * PyTorch; a NaN in y gives NaN.
 */
export const reluBackward = (gpu: Gpu, y: Tensor, dy: Tensor): Tensor => activationBackward(gpu, 'reluBackward', RELU_BACKWARD, y, dy, ['y', 'dy']);

function activation(gpu: Gpu, op: string, kernel: KernelSpec, x: Tensor, out: Tensor | undefined): Tensor {
  expect(op, 'x', x, x.shape);
  const o = outputLike(gpu, op, x, out);
  gpu.dispatch(kernel, { params: { n: x.size, alpha: 1 }, tensors: [x, o], workgroups: gpu.grid(x.size, WG) });
  return o;
}

/** A fresh upstream gradient ⊙ the activation's derivative, read off `at` (its input, or ReLU's output). */
function activationBackward(gpu: Gpu, op: string, kernel: KernelSpec, at: Tensor, dy: Tensor, names: [string, string]): Tensor {
  expect(op, names[0], at, at.shape);
  sameShape(op, at, dy, names);
  const o = gpu.empty(at.shape);
  gpu.dispatch(kernel, { params: { n: at.size, alpha: 1 }, tensors: [at, dy, o], workgroups: gpu.grid(at.size, WG) });
  return o;
}
