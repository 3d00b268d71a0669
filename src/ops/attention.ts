// Causal multi-head self-attention over GPT-2's fused qkv (B,T,3C), softmax fused in. Forward saves
// the probabilities att (B,NH,T,T); backward accumulates (+=) into dqkv, as llm.c does, or returns
// a fresh one (the gradient convention, docs/ARCHITECTURE.md).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';

const WG = 64;
const spec = (entry: string): KernelSpec => ({ shader: 'attention.wgsl', entry, params: ['B:u32', 'T:u32', 'C:u32', 'NH:u32', 'scale:f32'], constants: { WG } });
const FORWARD = spec('forward');
const ROW_BACKWARD = spec('row_backward');
const COLUMN_BACKWARD = spec('column_backward');

function dims(op: string, qkv: Tensor, NH: number) {
  if (qkv.shape.length !== 3 || qkv.shape[2]! % 3 !== 0) throw new ShapeError(`${op}: qkv must have shape [B×T×3C], got ${qkv}`);
  const [B, T, C3] = qkv.shape as [number, number, number];
  const C = C3 / 3;
  if (!Number.isInteger(NH) || NH < 1 || C % NH !== 0) throw new ShapeError(`${op}: C = ${C} must split into NH = ${NH} heads`);
  expect(op, 'qkv', qkv, [B, T, 3 * C]);
  return { B, T, C, NH, scale: 1 / Math.sqrt(C / NH) };
}

export interface AttentionOut {
  out: Tensor;
  /** Softmax probabilities (B,NH,T,T), zero above the diagonal; backward needs them. */
  att: Tensor;
}

/** out (B,T,C) = softmax(q·kᵀ/√HS, causal)·v per head. */
export function attentionForward(gpu: Gpu, qkv: Tensor, NH: number): AttentionOut {
  const params = dims('attentionForward', qkv, NH);
  const { B, T, C } = params;
  const out = gpu.empty([B, T, C]);
  const att = gpu.empty([B, NH, T, T]);
  gpu.dispatch(FORWARD, { params, tensors: [qkv, att, out], workgroups: gpu.grid(B * NH * T, WG) });
  return { out, att };
}

/** Gradient wrt qkv, accumulated into `dqkv` when given (+=). */
export function attentionBackward(gpu: Gpu, dout: Tensor, qkv: Tensor, att: Tensor, NH: number, dqkv?: Tensor): Tensor {
  const op = 'attentionBackward';
  const params = dims(op, qkv, NH);
  const { B, T, C } = params;
  expect(op, 'dout', dout, [B, T, C]);
  expect(op, 'att', att, [B, NH, T, T]);
  const grad = dqkv ?? gpu.zeros(qkv.shape);
  expect(op, 'dqkv', grad, qkv.shape);
  noAlias(op, grad, dout, qkv, att);
  const dpre = gpu.empty([B, NH, T, T], 'f32', 'attention.dpre');
  const args = { params, workgroups: gpu.grid(B * NH * T, WG) };
  gpu.dispatch(ROW_BACKWARD, { ...args, tensors: [qkv, att, dout, dpre, grad] });
  gpu.dispatch(COLUMN_BACKWARD, { ...args, tensors: [qkv, att, dout, dpre, grad] });
  dpre.release();
  return grad;
}
