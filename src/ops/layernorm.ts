// LayerNorm over the last dim. Forward saves mean and rstd (one per row); backward accumulates
// (+=) into the gradients it is given, as llm.c does, and allocates zeroed ones otherwise (the
// gradient convention, docs/ARCHITECTURE.md).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';

const WG = 64;
const spec = (entry: string): KernelSpec => ({ shader: 'layernorm.wgsl', entry, params: ['N:u32', 'C:u32', 'eps:f32'], constants: { WG } });
const FORWARD = spec('forward');
const BACKWARD_INPUT = spec('backward_input');
const BACKWARD_PARAMS = spec('backward_params');

export interface LayerNormOut {
  out: Tensor;
  /** Per-row mean and 1/std, shaped like inp without its last dim; backward needs them. */
  mean: Tensor;
  rstd: Tensor;
}

export interface LayerNormGrads {
  dinp: Tensor;
  dweight: Tensor;
  dbias: Tensor;
}

function rowsOf(op: string, inp: Tensor): { N: number; C: number; rowShape: number[] } {
  if (inp.shape.length === 0) throw new ShapeError(`${op}: inp must have at least one dim, got a scalar`);
  const C = inp.shape.at(-1)!;
  return { N: C === 0 ? 0 : inp.size / C, C, rowShape: inp.shape.length > 1 ? inp.shape.slice(0, -1) : [1] };
}

/** out = (inp - mean)·rstd·weight + bias over the last dim C of inp (…, C). */
export function layernormForward(gpu: Gpu, inp: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): LayerNormOut {
  const { N, C, rowShape } = rowsOf('layernormForward', inp);
  expect('layernormForward', 'inp', inp, inp.shape);
  expect('layernormForward', 'weight', weight, [C]);
  expect('layernormForward', 'bias', bias, [C]);
  const out = gpu.empty(inp.shape);
  const mean = gpu.empty(rowShape);
  const rstd = gpu.empty(rowShape);
  gpu.dispatch(FORWARD, { params: { N, C, eps }, tensors: [inp, weight, bias, mean, rstd, out], workgroups: gpu.grid(N, WG) });
  return { out, mean, rstd };
}

/** Gradients of layernormForward, accumulated into `grads` where given (+=). */
export function layernormBackward(gpu: Gpu, dout: Tensor, inp: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, grads: Partial<LayerNormGrads> = {}): LayerNormGrads {
  const op = 'layernormBackward';
  const { N, C, rowShape } = rowsOf(op, inp);
  expect(op, 'inp', inp, inp.shape);
  expect(op, 'dout', dout, inp.shape);
  expect(op, 'weight', weight, [C]);
  expect(op, 'mean', mean, rowShape);
  expect(op, 'rstd', rstd, rowShape);
  const dinp = grads.dinp ?? gpu.zeros(inp.shape);
  const dweight = grads.dweight ?? gpu.zeros([C]);
  const dbias = grads.dbias ?? gpu.zeros([C]);
  expect(op, 'dinp', dinp, inp.shape);
  expect(op, 'dweight', dweight, [C]);
  expect(op, 'dbias', dbias, [C]);
  for (const g of [dinp, dweight, dbias]) noAlias(op, g, dout, inp, weight, mean, rstd);
  noAlias(op, dweight, dbias);
  const params = { N, C, eps: 0 };
  gpu.dispatch(BACKWARD_INPUT, { params, tensors: [inp, weight, dout, mean, rstd, dinp], workgroups: gpu.grid(N, WG) });
  gpu.dispatch(BACKWARD_PARAMS, { params, tensors: [inp, dout, mean, rstd, dweight, dbias], workgroups: gpu.grid(C, WG) });
  return { dinp, dweight, dbias };
}
