// RMSNorm over the last dim (Llama's). Forward saves rstd (one per row); backward accumulates (+=)
// into the gradients it is given and allocates zeroed ones otherwise (the gradient convention).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';

const WG = 64;
const spec = (entry: string): KernelSpec => ({ shader: 'rmsnorm.wgsl', entry, params: ['N:u32', 'C:u32', 'eps:f32'], constants: { WG } });
const FORWARD = spec('forward');
const BACKWARD_INPUT = spec('backward_input');
const BACKWARD_PARAMS = spec('backward_params');

export interface RmsNormOut {
  out: Tensor;
  /** Per-row 1/rms, shaped like inp without its last dim; backward needs it. */
  rstd: Tensor;
}

function rowsOf(op: string, inp: Tensor) {
  if (inp.shape.length === 0) throw new ShapeError(`${op}: inp must have at least one dim, got a scalar`);
  const C = inp.shape.at(-1)!;
  expect(op, 'inp', inp, inp.shape);
  return { N: C === 0 ? 0 : inp.size / C, C, rowShape: inp.shape.length > 1 ? inp.shape.slice(0, -1) : [1] };
}

/** out = inp / √(mean(inp²) + eps) · weight over the last dim C. */
export function rmsnormForward(gpu: Gpu, inp: Tensor, weight: Tensor, eps: number): RmsNormOut {
  const { N, C, rowShape } = rowsOf('rmsnormForward', inp);
  expect('rmsnormForward', 'weight', weight, [C]);
  const out = gpu.empty(inp.shape);
  const rstd = gpu.empty(rowShape);
  gpu.dispatch(FORWARD, { params: { N, C, eps }, tensors: [inp, weight, rstd, out], workgroups: gpu.grid(N, WG) });
  return { out, rstd };
}

/** Gradients of rmsnormForward, accumulated into `grads` where given (+=). */
export function rmsnormBackward(gpu: Gpu, dout: Tensor, inp: Tensor, weight: Tensor, rstd: Tensor, grads: { dinp?: Tensor; dweight?: Tensor } = {}) {
  const op = 'rmsnormBackward';
  const { N, C, rowShape } = rowsOf(op, inp);
  expect(op, 'dout', dout, inp.shape);
  expect(op, 'weight', weight, [C]);
  expect(op, 'rstd', rstd, rowShape);
  const dinp = grads.dinp ?? gpu.zeros(inp.shape);
  const dweight = grads.dweight ?? gpu.zeros([C]);
  expect(op, 'dinp', dinp, inp.shape);
  expect(op, 'dweight', dweight, [C]);
  for (const g of [dinp, dweight]) noAlias(op, g, dout, inp, weight, rstd);
  const params = { N, C, eps: 0 };
  gpu.dispatch(BACKWARD_INPUT, { params, tensors: [inp, weight, dout, rstd, dinp], workgroups: gpu.grid(N, WG) });
  gpu.dispatch(BACKWARD_PARAMS, { params, tensors: [inp, dout, rstd, dweight], workgroups: gpu.grid(C, WG) });
  return { dinp, dweight };
}
