// Row selection over the leading dims: gatherRows picks rows of x by index, scatterRowsAdd is its
// backward and adds (+=) into the gradient it is given (the gradient convention,
// docs/ARCHITECTURE.md). The model uses it to run its top only at the positions that carry a loss.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { DType, F32, Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';

const WG = 256;
const spec = (entry: string): KernelSpec => ({ shader: 'rows.wgsl', entry, params: ['n:u32', 'C:u32', 'stride:u32', 'copies:u32'], constants: { WG } });
const GATHER = spec('gather');
const SCATTER_ADD = spec('scatter_add');

/** Distinct row indices on the GPU, checked on the host. */
export interface RowIndex {
  idx: Tensor<'u32'>;
  /** Rows of the tensors they index. */
  of: number;
}

export function rowIndex(gpu: Gpu, rows: readonly number[], of: number): RowIndex {
  const seen = new Set<number>();
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r >= of) throw new RangeError(`rowIndex: row ${r} is not a row of ${of}`);
    if (seen.has(r)) throw new RangeError(`rowIndex: row ${r} is given twice`);
    seen.add(r);
  }
  return { idx: gpu.tensor(Uint32Array.from(rows), [rows.length]), of };
}

function rowsOf(op: string, what: string, x: Tensor, of: number): number {
  if (x.shape.length < 2) throw new ShapeError(`${op}: ${what} must have rows, got ${x}`);
  const C = x.shape.at(-1)!;
  if (x.size !== of * C) throw new ShapeError(`${op}: ${what} ${x} does not have the index's ${of} rows`);
  return C;
}

/**
 * x (…, C) with `r.of` rows → [n, C], row i = x's row r.idx[i]; a 1-D x of `r.of` elements → [n].
 * With copies G: [G·n, C] (or [G·n]), copy g from x's g-th block of r.of rows where x has G·r.of
 * rows, else from x's only block (the same rows in every copy).
 */
export function gatherRows<D extends DType>(gpu: Gpu, x: Tensor<D>, r: RowIndex, copies = 1): Tensor<D> {
  const flat = x.shape.length === 1;
  const C = flat ? 1 : x.shape.at(-1)!;
  const blocks = x.size / (C * r.of);
  if (blocks !== 1 && blocks !== copies) throw new ShapeError(`gatherRows: x ${x} does not have the index's ${r.of} rows${copies > 1 ? ` (or ${copies} copies of them)` : ''}`);
  const n = r.idx.size;
  const out = gpu.empty(flat ? [copies * n] : [copies * n, C], x.dtype) as Tensor<D>;
  const params = { n, C, stride: blocks === 1 ? 0 : r.of, copies };
  if (copies * n * C > 0) gpu.dispatch(GATHER, { params, tensors: [r.idx, x, out], workgroups: gpu.grid(copies * n * C, WG) });
  return out;
}

/** dx's row r.idx[i] += dy's row i: the backward of gatherRows, added into dx. */
export function scatterRowsAdd(gpu: Gpu, dy: F32, r: RowIndex, dx: F32): void {
  const C = rowsOf('scatterRowsAdd', 'dx', dx, r.of);
  const n = r.idx.size;
  expect('scatterRowsAdd', 'dy', dy, [n, C]);
  noAlias('scatterRowsAdd', dx, dy);
  if (n * C > 0) gpu.dispatch(SCATTER_ADD, { params: { n, C, stride: 0, copies: 1 }, tensors: [r.idx, dy, dx], workgroups: gpu.grid(n * C, WG) });
}
