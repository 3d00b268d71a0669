// Rotary position embedding in place on (N, H·HD) rows: forward rotates, backward rotates back
// (the transpose of a rotation is its inverse, so the backward needs no saved activations).
// Gradient convention: `ropeBackward` turns the gradient it is given into the input's, in place.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32, Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';

const WG = 64;
const ROTATE: KernelSpec = { shader: 'rope.wgsl', entry: 'rotate', params: ['N:u32', 'H:u32', 'HD:u32', 'dir:f32'], constants: { WG } };

/** cos and sin tables (P × HD/2) of each position's angle per frequency. */
export interface RopeTables {
  cos: F32;
  sin: F32;
}

function rotate(gpu: Gpu, op: string, x: F32, pos: Tensor<'u32'>, tables: RopeTables, HD: number, dir: number): void {
  if (x.shape.length !== 2 || HD % 2 !== 0 || x.shape[1]! % HD !== 0) throw new ShapeError(`${op}: x must be [N × H·HD] with an even HD = ${HD}, got ${x}`);
  const [N, W] = x.shape as [number, number];
  expect(op, 'pos', pos, [N], 'u32');
  expect(op, 'cos', tables.cos, [-1, HD / 2]);
  expect(op, 'sin', tables.sin, tables.cos.shape);
  noAlias(op, x, pos, tables.cos, tables.sin);
  const H = W / HD;
  gpu.dispatch(ROTATE, { params: { N, H, HD, dir }, tensors: [pos, tables.cos, tables.sin, x], workgroups: gpu.grid((N * H * HD) / 2, WG) });
}

/** Rotates every head of row n by position pos[n] (each < the tables' P; the caller checks). */
export const ropeForward = (gpu: Gpu, x: F32, pos: Tensor<'u32'>, tables: RopeTables, HD: number): void => rotate(gpu, 'ropeForward', x, pos, tables, HD, 1);

/** dx from dy in place: the inverse rotation. */
export const ropeBackward = (gpu: Gpu, dx: F32, pos: Tensor<'u32'>, tables: RopeTables, HD: number): void => rotate(gpu, 'ropeBackward', dx, pos, tables, HD, -1);
