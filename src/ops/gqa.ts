// Grouped-query attention's head layout: q (N, NH·HD) with k, v (N, KVH·HD) packed into the fused
// qkv (N, 3·NH·HD) that ops/attention.ts and ops/decode.ts take, each kv head repeated for its
// group of NH/KVH query heads; and the adjoint, which sums each group's gradient back into its kv
// head. The unpacked gradients come back fresh (activation gradients, the gradient convention).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect } from './check.ts';

const WG = 64;
const spec = (entry: string): KernelSpec => ({ shader: 'gqa.wgsl', entry, params: ['N:u32', 'NH:u32', 'KVH:u32', 'HD:u32'], constants: { WG } });
const PACK = spec('pack');
const UNPACK = spec('unpack');

export interface Heads {
  NH: number;
  KVH: number;
  HD: number;
}

function check(op: string, N: number, { NH, KVH, HD }: Heads): void {
  for (const [k, v] of Object.entries({ NH, KVH, HD })) if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${op}: ${k} must be a positive integer, got ${v}`);
  if (NH % KVH !== 0) throw new ShapeError(`${op}: ${KVH} kv heads do not divide ${NH} query heads`);
  if (!Number.isInteger(N)) throw new ShapeError(`${op}: rows must be whole`);
}

/** qkv (N, 3·NH·HD) from q (N, NH·HD), k and v (N, KVH·HD). */
export function gqaPack(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, heads: Heads): Tensor {
  const op = 'gqaPack';
  const N = q.shape[0]!;
  check(op, N, heads);
  const C = heads.NH * heads.HD;
  expect(op, 'q', q, [N, C]);
  expect(op, 'k', k, [N, heads.KVH * heads.HD]);
  expect(op, 'v', v, k.shape);
  const qkv = gpu.empty([N, 3 * C]);
  gpu.dispatch(PACK, { params: { N, ...heads }, tensors: [q, k, v, qkv], workgroups: gpu.grid(N * 3 * C, WG) });
  return qkv;
}

/** The gradients of q, k and v from the packed one's. */
export function gqaUnpack(gpu: Gpu, dqkv: Tensor, heads: Heads): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const op = 'gqaUnpack';
  const N = dqkv.shape[0]!;
  check(op, N, heads);
  const C = heads.NH * heads.HD;
  expect(op, 'dqkv', dqkv, [N, 3 * C]);
  const dq = gpu.empty([N, C]);
  const dk = gpu.empty([N, heads.KVH * heads.HD]);
  const dv = gpu.empty(dk.shape);
  gpu.dispatch(UNPACK, { params: { N, ...heads }, tensors: [dqkv, dq, dk, dv], workgroups: gpu.grid(N * C, WG) });
  return { dq, dk, dv };
}
