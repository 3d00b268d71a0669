// LoRA ops: a rank-r adapter (A [in, r], B [r, out], scale s) on a linear layer y = x·W, adding
// s·(x·A)·B to its output; the backward of that term; merging s·A·B into W (and out again), W
// stored [in, out] (GPT-2's Conv1D) or [out, in] (nn.Linear, y = x·Wᵀ: the Llama family).
// Gradient convention (docs/ARCHITECTURE.md): loraBackward adds into dA, dB and dx, all given.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { expect, noAlias } from './check.ts';
import { matmul } from './matmul.ts';

const WG = 64;
const PARAMS = ['n:u32', 'k:u32', 'r:u32', 'sYk:u32', 'sYj:u32', 'cols:u32', 'trans:u32', 'scale:f32'];
const THIN: KernelSpec = { shader: 'lora.wgsl', entry: 'thin', params: PARAMS, constants: { WG } };
const MERGE: KernelSpec = { shader: 'lora.wgsl', entry: 'merge', params: PARAMS, constants: { WG } };

export interface LoraFactors {
  /** [in, r] */
  a: Tensor;
  /** [r, out] */
  b: Tensor;
  scale: number;
}

function dims(op: string, f: LoraFactors): { nIn: number; r: number; nOut: number } {
  const [nIn, r] = f.a.shape as [number, number];
  expect(op, 'a', f.a, [-1, -1]);
  expect(op, 'b', f.b, [r, -1]);
  return { nIn, r, nOut: f.b.shape[1]! };
}

/** A fresh [n, r] = scale·X [n, k]·Y with Y(k, j) at k·sYk + j·sYj. */
function thin(gpu: Gpu, x: Tensor, y: Tensor, r: number, sYk: number, sYj: number, scale: number): Tensor {
  const [n, k] = x.shape as [number, number];
  const out = gpu.empty([n, r]);
  gpu.dispatch(THIN, { params: { n, k, r, sYk, sYj, cols: 0, trans: 0, scale }, tensors: [x, y, out], workgroups: gpu.grid(n * r, WG) });
  return out;
}

/**
 * y [n, out] += s·(x [n, in]·A)·B. Returns h = x·A ([n, r]), which the backward needs; the caller
 * releases it.
 */
export function loraForward(gpu: Gpu, x: Tensor, f: LoraFactors, y: Tensor): Tensor {
  const op = 'loraForward';
  const { nIn, r, nOut } = dims(op, f);
  expect(op, 'x', x, [-1, nIn]);
  expect(op, 'y', y, [x.shape[0]!, nOut]);
  noAlias(op, y, x, f.a, f.b);
  const h = thin(gpu, x, f.a, r, r, 1, 1);
  matmul(gpu, h, f.b, { alpha: f.scale, accumulate: true, out: y });
  return h;
}

/** Adds the gradients of y += s·(x·A)·B: dB += s·hᵀ·dy, dA += xᵀ·(s·dy·Bᵀ), dx += (s·dy·Bᵀ)·Aᵀ. */
export function loraBackward(gpu: Gpu, x: Tensor, h: Tensor, f: LoraFactors, dy: Tensor, g: { da: Tensor; db: Tensor; dx: Tensor }): void {
  const op = 'loraBackward';
  const { nIn, r, nOut } = dims(op, f);
  const n = x.shape[0]!;
  expect(op, 'x', x, [n, nIn]);
  expect(op, 'h', h, [n, r]);
  expect(op, 'dy', dy, [n, nOut]);
  expect(op, 'da', g.da, f.a.shape);
  expect(op, 'db', g.db, f.b.shape);
  expect(op, 'dx', g.dx, x.shape);
  matmul(gpu, h, dy, { transA: true, alpha: f.scale, accumulate: true, out: g.db });
  // dh = s·dy·Bᵀ: Bᵀ(k, j) = B[j, k], i.e. strides (1, nOut).
  const dh = thin(gpu, dy, f.b, r, 1, nOut, f.scale);
  matmul(gpu, x, dh, { transA: true, accumulate: true, out: g.da });
  matmul(gpu, dh, f.a, { transB: true, accumulate: true, out: g.dx });
  dh.release();
}

export interface MergeOptions {
  /** 1 merges the adapter, −1 takes it out again. */
  sign?: 1 | -1;
  /** W stored [out, in] (nn.Linear): W + s·(A·B)ᵀ. */
  transposed?: boolean;
  /** Written instead of a fresh tensor. */
  out?: Tensor;
}

/** W + sign·s·A·B (in W's layout) into `out`, fresh when absent. */
export function loraMerge(gpu: Gpu, w: Tensor, f: LoraFactors, { sign = 1, transposed = false, out }: MergeOptions = {}): Tensor {
  const op = 'loraMerge';
  const { nIn, r, nOut } = dims(op, f);
  expect(op, 'w', w, transposed ? [nOut, nIn] : [nIn, nOut]);
  const o = out ?? gpu.empty(w.shape);
  expect(op, 'out', o, w.shape);
  noAlias(op, o, w, f.a, f.b);
  const params = { n: nIn * nOut, k: nOut, r, sYk: 0, sYj: 0, cols: w.shape[1]!, trans: transposed ? 1 : 0, scale: sign * f.scale };
  gpu.dispatch(MERGE, { params, tensors: [w, f.a, f.b, o], workgroups: gpu.grid(nIn * nOut, WG) });
  return o;
}
