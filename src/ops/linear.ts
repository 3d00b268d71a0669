// nn.Linear as Hugging Face's Llama-family checkpoints store it: W is (out, in) and y = x·Wᵀ + b
// (GPT-2's Conv1D is (in, out): matmul/matmulBackward serve it directly). Backward (the gradient
// convention): dW and dbias are added into where given (none for a frozen weight); dx is added into
// the buffer given, else fresh.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32 as Tensor, Weight } from '../gpu/tensor.ts';
import { ShapeError, expect } from './check.ts';
import { matmul } from './matmul.ts';

function dims(op: string, x: Tensor, w: Weight) {
  if (x.shape.length !== 2 || w.shape.length !== 2) throw new ShapeError(`${op}: x must be [N × in] and w [out × in], got ${x} and ${w}`);
  const [out, inp] = w.shape as [number, number];
  expect(op, 'x', x, [-1, inp]);
  return { N: x.shape[0]!, out, inp };
}

/** y (N, out) = x (N, in) · Wᵀ (+ bias); W stored f32 or f16. */
export function linear(gpu: Gpu, x: Tensor, w: Weight, bias?: Tensor): Tensor {
  dims('linear', x, w);
  return matmul(gpu, x, w, { transB: true, bias });
}

export function linearBackward(gpu: Gpu, x: Tensor, w: Weight, dy: Tensor, grads: { dw?: Tensor; dbias?: Tensor; dx?: Tensor }): Tensor {
  const op = 'linearBackward';
  const { N, out } = dims(op, x, w);
  expect(op, 'dy', dy, [N, out]);
  if (grads.dw) {
    expect(op, 'dw', grads.dw, w.shape);
    // dW (out, in) += dyᵀ·x
    matmul(gpu, dy, x, { transA: true, accumulate: true, out: grads.dw });
  }
  if (grads.dbias) {
    expect(op, 'dbias', grads.dbias, [out]);
    const ones = gpu.tensor(new Float32Array(N).fill(1), [1, N]);
    matmul(gpu, ones, dy, { accumulate: true, out: grads.dbias.reshape([1, out]) });
    ones.release();
  }
  // dx (N, in) = dy·W
  return grads.dx ? matmul(gpu, dy, w, { accumulate: true, out: grads.dx }) : matmul(gpu, dy, w);
}
