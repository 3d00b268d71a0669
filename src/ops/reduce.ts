// Deterministic reductions: over the last axis (per row), and over whole tensors to a scalar in
// two stages (fixed-size chunks to partials, then the partials), for tensors of millions of
// elements. The squared L2 norm takes a list of tensors for global grad-norm clipping, or per group
// of stacked tensors ([G, …] each: G adapters trained at once, each clipped by its own norm).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';
import { rowChunks } from './chunks.ts';

const WG = 256;
const PARAMS = ['rows:u32', 'len:u32', 'n:u32', 'alpha:f32', 'square:u32', 'base:u32', 'step:u32'];
const ROWS: KernelSpec = { shader: 'reduce.wgsl', entry: 'rows', params: PARAMS, constants: { WG } };
const DOT_ROWS: KernelSpec = { shader: 'reduce.wgsl', entry: 'dot_rows', params: PARAMS, constants: { WG } };
// Stage 1 gives each tensor at most this many partials, each a chunk of at least 4 lanes' worth.
const MAX_PARTIALS = 1024;
const MIN_CHUNK = 4 * WG;

interface RowsPass {
  rows: number;
  len: number;
  n: number;
  alpha?: number;
  square?: boolean;
  base?: number;
  /** Row r goes to out[base + r·step]. */
  step?: number;
}

function rowsPass(gpu: Gpu, x: Tensor, out: Tensor, { rows, len, n, alpha = 1, square = false, base = 0, step = 1 }: RowsPass): void {
  gpu.dispatch(ROWS, { params: { rows, len, n, alpha, square: square ? 1 : 0, base, step }, tensors: [x, out], workgroups: gpu.grid(rows, 1) });
}

function overRows(gpu: Gpu, op: string, x: Tensor, mean: boolean, out: Tensor | undefined): Tensor {
  if (x.shape.length === 0) throw new ShapeError(`${op}: x must have at least one dim, got a scalar`);
  expect(op, 'x', x, x.shape);
  const C = x.shape.at(-1)!;
  if (mean && C === 0) throw new ShapeError(`${op}: the rows of x are empty; their mean is undefined`);
  const rowShape = x.shape.length > 1 ? x.shape.slice(0, -1) : [1];
  const o = out ?? gpu.empty(rowShape);
  expect(op, 'out', o, rowShape);
  noAlias(op, o, x);
  rowsPass(gpu, x, o, { rows: o.size, len: C, n: x.size, alpha: mean ? 1 / C : 1 });
  return o;
}

/** Sum over the last axis: (…, C) → (…), or [1] for a 1-D x. */
export function sumRows(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  return overRows(gpu, 'sumRows', x, false, out);
}

/** Mean over the last axis: (…, C) → (…), or [1] for a 1-D x. */
export function meanRows(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  return overRows(gpu, 'meanRows', x, true, out);
}

/**
 * x [R, n] · y [n] → [R]: one workgroup per row, for few rows of a long reduction (a matmul would
 * walk all of n in one lane per output).
 */
export function dotRows(gpu: Gpu, x: Tensor, y: Tensor): Tensor {
  const op = 'dotRows';
  if (x.shape.length !== 2) throw new ShapeError(`${op}: x must be 2-D [R×n], got ${x}`);
  const [R, n] = x.shape as [number, number];
  expect(op, 'y', y, [n]);
  const out = gpu.empty([R]);
  if (R > 0) gpu.dispatch(DOT_ROWS, { params: { rows: R, len: n, n: R * n, alpha: 1, square: 0, base: 0, step: 1 }, tensors: [x, out, y], workgroups: gpu.grid(R, 1) });
  return out;
}

/** Σ f(x) over every element of every tensor, f the identity or the square, to a [1] tensor. */
function total(gpu: Gpu, op: string, xs: readonly Tensor[], square: boolean): Tensor {
  xs.forEach((x, i) => expect(op, xs.length > 1 ? `xs[${i}]` : 'x', x, x.shape));
  // The chunking depends only on each tensor's size: the same bits on every run.
  const chunks = xs.map((x) => Math.max(MIN_CHUNK, Math.ceil(x.size / MAX_PARTIALS)));
  const parts = xs.map((x, i) => Math.ceil(x.size / chunks[i]!));
  const partials = gpu.empty([parts.reduce((a, b) => a + b, 0)], 'f32', `${op}.partials`);
  let base = 0;
  xs.forEach((x, i) => {
    const len = chunks[i]!;
    // A tensor over the binding limit is bound a run of whole chunks at a time: the same partials.
    for (const [p0, p1] of rowChunks(gpu, parts[i]!, [len * 4], `${op}: ${x}`)) {
      const view = x.reshape([x.size]).view(p0 * len, [Math.min(x.size, p1 * len) - p0 * len]);
      rowsPass(gpu, view, partials, { rows: p1 - p0, len, n: view.size, square, base: base + p0 });
    }
    base += parts[i]!;
  });
  const out = gpu.empty([1]);
  rowsPass(gpu, partials, out, { rows: 1, len: base, n: base });
  partials.release();
  return out;
}

/** Sum of all elements, as a [1] tensor. */
export function sum(gpu: Gpu, x: Tensor): Tensor {
  return total(gpu, 'sum', [x], false);
}

/** Squared L2 norm of a tensor, or of several together (global grad norm), as a [1] tensor. */
export function sumSquares(gpu: Gpu, xs: Tensor | readonly Tensor[]): Tensor {
  return total(gpu, 'sumSquares', Array.isArray(xs) ? xs : [xs as Tensor], true);
}

/**
 * Squared L2 norms per group: each tensor is [G, …]; out[g] sums the squares of every tensor's g-th
 * slice ([G]). One workgroup walks each slice, so a slice must fit one storage binding.
 */
export function sumSquaresGroups(gpu: Gpu, xs: readonly Tensor[], G: number): Tensor {
  const op = 'sumSquaresGroups';
  if (!Number.isInteger(G) || G < 1) throw new RangeError(`${op}: G must be a positive integer, got ${G}`);
  xs.forEach((x, i) => {
    if (x.shape[0] !== G) throw new ShapeError(`${op}: xs[${i}] must have ${G} groups on its first axis, got ${x}`);
  });
  // partials [G, tensors]: tensor i's G slices go to column i.
  const partials = gpu.empty([G, xs.length], 'f32', `${op}.partials`);
  xs.forEach((x, i) => rowsPass(gpu, x, partials, { rows: G, len: x.size / G, n: x.size, square: true, base: i, step: xs.length }));
  const out = gpu.empty([G]);
  rowsPass(gpu, partials, out, { rows: G, len: xs.length, n: partials.size });
  partials.release();
  return out;
}
