// LoRA ops: a rank-r adapter (A [in, r], B [r, out], scale s) on a linear layer y = x·W, adding
// s·(x·A)·B to its output; the backward of that term; merging s·A·B into W (and out again), W
// stored [in, out] (GPT-2's Conv1D) or [out, in] (nn.Linear, y = x·Wᵀ: the Llama family).
// Stacked adapters (A [G, in, r], B [G, r, out]: G adapters trained at once) split the rows of x
// into G contiguous blocks of equal size, block g through adapter g: the products are the
// matmul's batched ones, and each adapter's gradient sums over its own rows only.
// Gradient convention (docs/ARCHITECTURE.md): loraBackward adds into dA, dB and dx, all given.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';
import { matmul } from './matmul.ts';

const WG = 64;
const PARAMS = ['n:u32', 'k:u32', 'r:u32', 'sYk:u32', 'sYj:u32', 'sYg:u32', 'gRows:u32', 'cols:u32', 'trans:u32', 'aOff:u32', 'bOff:u32', 'scale:f32'];
const THIN: KernelSpec = { shader: 'lora.wgsl', entry: 'thin', params: PARAMS, constants: { WG } };
const MERGE: KernelSpec = { shader: 'lora.wgsl', entry: 'merge', params: PARAMS, constants: { WG } };
const UNUSED = { sYk: 0, sYj: 0, sYg: 0, gRows: 1, cols: 0, trans: 0, aOff: 0, bOff: 0 };

export interface LoraFactors {
  /** [in, r], or [G, in, r] for G stacked adapters */
  a: Tensor;
  /** [r, out], or [G, r, out] */
  b: Tensor;
  scale: number;
}

/** Sizes of one adapter, and G (1 for unstacked factors). */
function dims(op: string, f: LoraFactors): { G: number; nIn: number; r: number; nOut: number } {
  if (f.a.shape.length !== 2 && f.a.shape.length !== 3) throw new ShapeError(`${op}: a must be [in×r] or stacked [G×in×r], got ${f.a}`);
  const lead = f.a.shape.slice(0, -2);
  const [nIn, r] = f.a.shape.slice(-2) as [number, number];
  expect(op, 'b', f.b, [...lead, r, -1]);
  return { G: lead[0] ?? 1, nIn, r, nOut: f.b.shape.at(-1)! };
}

/** Rows per adapter of x [n, ·] under G stacked adapters. */
function groupRows(op: string, x: Tensor, G: number): number {
  const n = x.shape[0]!;
  if (n % G !== 0) throw new ShapeError(`${op}: ${n} rows of x do not split into ${G} equal blocks, one per stacked adapter`);
  return n / G;
}

/** A fresh [n, r] = scale·X [n, k]·Y with Y(k, j) at (row / gRows)·sYg + k·sYk + j·sYj. */
function thin(gpu: Gpu, x: Tensor, y: Tensor, r: number, s: { sYk: number; sYj: number; sYg: number; gRows: number }, scale: number): Tensor {
  const [n, k] = x.shape as [number, number];
  const out = gpu.empty([n, r]);
  gpu.dispatch(THIN, { params: { ...UNUSED, n, k, r, ...s, gRows: Math.max(1, s.gRows), scale }, tensors: [x, y, out], workgroups: gpu.grid(n * r, WG) });
  return out;
}

/** [n, c] as [G, n / G, c]: each adapter's block of rows as one batch of the matmul. */
const blocks = (t: Tensor, G: number) => t.reshape([G, t.shape[0]! / G, t.shape[1]!]);
/** Factors as [G, ·, ·] (G = 1 for unstacked ones). */
const stacked = (t: Tensor) => (t.shape.length === 3 ? t : t.reshape([1, ...t.shape]));

/**
 * y [n, out] += s·(x [n, in]·A)·B, rows block g through adapter g when stacked. Returns h = x·A
 * ([n, r]), which the backward needs; the caller releases it.
 */
export function loraForward(gpu: Gpu, x: Tensor, f: LoraFactors, y: Tensor): Tensor {
  const op = 'loraForward';
  const { G, nIn, r, nOut } = dims(op, f);
  expect(op, 'x', x, [-1, nIn]);
  expect(op, 'y', y, [x.shape[0]!, nOut]);
  noAlias(op, y, x, f.a, f.b);
  const m = groupRows(op, x, G);
  const h = thin(gpu, x, f.a, r, { sYk: r, sYj: 1, sYg: nIn * r, gRows: m }, 1);
  matmul(gpu, blocks(h, G), stacked(f.b), { alpha: f.scale, accumulate: true, out: blocks(y, G) });
  return h;
}

/** Adds the gradients of y += s·(x·A)·B: dB += s·hᵀ·dy, dA += xᵀ·(s·dy·Bᵀ), dx += (s·dy·Bᵀ)·Aᵀ (per adapter when stacked). */
export function loraBackward(gpu: Gpu, x: Tensor, h: Tensor, f: LoraFactors, dy: Tensor, g: { da: Tensor; db: Tensor; dx: Tensor }): void {
  const op = 'loraBackward';
  const { G, nIn, r, nOut } = dims(op, f);
  const n = x.shape[0]!;
  expect(op, 'x', x, [n, nIn]);
  expect(op, 'h', h, [n, r]);
  expect(op, 'dy', dy, [n, nOut]);
  expect(op, 'da', g.da, f.a.shape);
  expect(op, 'db', g.db, f.b.shape);
  expect(op, 'dx', g.dx, x.shape);
  const m = groupRows(op, x, G);
  const [x3, dy3] = [blocks(x, G), blocks(dy, G)];
  matmul(gpu, blocks(h, G), dy3, { transA: true, alpha: f.scale, accumulate: true, out: stacked(g.db) });
  // dh = s·dy·Bᵀ: Bᵀ(k, j) = B[j, k], i.e. strides (1, nOut).
  const dh = thin(gpu, dy, f.b, r, { sYk: 1, sYj: nOut, sYg: r * nOut, gRows: m }, f.scale);
  const dh3 = blocks(dh, G);
  matmul(gpu, x3, dh3, { transA: true, accumulate: true, out: stacked(g.da) });
  matmul(gpu, dh3, stacked(f.a), { transB: true, accumulate: true, out: blocks(g.dx, G) });
  dh.release();
}

export interface MergeOptions {
  /** 1 merges the adapter, −1 takes it out again. */
  sign?: 1 | -1;
  /** W stored [out, in] (nn.Linear): W + s·(A·B)ᵀ. */
  transposed?: boolean;
  /** Written instead of a fresh tensor. */
  out?: Tensor;
  /** Which adapter of stacked factors. */
  adapter?: number;
}

/** W + sign·s·A·B (in W's layout; A, B adapter `adapter`'s when stacked) into `out`, fresh when absent. */
export function loraMerge(gpu: Gpu, w: Tensor, f: LoraFactors, { sign = 1, transposed = false, out, adapter = 0 }: MergeOptions = {}): Tensor {
  const op = 'loraMerge';
  const { G, nIn, r, nOut } = dims(op, f);
  if (!Number.isInteger(adapter) || adapter < 0 || adapter >= G) throw new RangeError(`${op}: adapter ${adapter} is not one of the ${G} stacked`);
  expect(op, 'w', w, transposed ? [nOut, nIn] : [nIn, nOut]);
  const o = out ?? gpu.empty(w.shape);
  expect(op, 'out', o, w.shape);
  noAlias(op, o, w, f.a, f.b);
  const params = { ...UNUSED, n: nIn * nOut, k: nOut, r, cols: w.shape[1]!, trans: transposed ? 1 : 0, aOff: adapter * nIn * r, bOff: adapter * r * nOut, scale: sign * f.scale };
  gpu.dispatch(MERGE, { params, tensors: [w, f.a, f.b, o], workgroups: gpu.grid(nIn * nOut, WG) });
  return o;
}
