// Matrix multiply. C = A·B for row-major f32 matrices.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';

const WG = 64;
const RB = 8;
const spec = (entry: string): KernelSpec => ({ shader: 'matmul.wgsl', entry, params: ['M:u32', 'N:u32', 'K:u32'], constants: { WG, RB } });
const VEC4 = spec('rows_vec4');
const SCALAR = spec('rows');

/** C[M,N] = A[M,K]·B[K,N]. */
export function matmul(gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  if (a.shape.length !== 2 || b.shape.length !== 2) throw new ShapeError(`matmul: a and b must be 2-D, got ${a} and ${b}`);
  const [M, K] = a.shape as [number, number];
  const N = b.shape[1]!;
  expect('matmul', 'a', a, [M, K]);
  expect('matmul', 'b', b, [K, -1]);
  const c = out ?? gpu.empty([M, N]);
  expect('matmul', 'out', c, [M, N]);
  noAlias('matmul', c, a, b);
  if (M === 0 || N === 0) return c;
  const vec4 = N % 4 === 0;
  const cols = vec4 ? N / 4 : N;
  gpu.dispatch(vec4 ? VEC4 : SCALAR, {
    params: { M, N, K },
    tensors: [a, b, c],
    workgroups: [Math.ceil(cols / WG), Math.ceil(M / RB)],
  });
  return c;
}
