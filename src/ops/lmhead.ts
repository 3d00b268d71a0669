// The tied LM head, logits = x·wteᵀ, and its backward, for an embedding table or logits over the
// storage-binding limit (GPT-2 small's wte [50257×768] is 147 MiB; lavapipe binds 128 MiB). The
// logits are computed in tiles of (rows of x) × (a chunk of the vocabulary), each tile a plain
// matmul on views; shaders/lmhead.wgsl moves tiles between their own buffer and their columns of
// the logits. When everything fits there is one tile: the very matmuls of the unsplit head.
// Gradient convention (docs/ARCHITECTURE.md): lmHeadBackward adds into dwte and returns a fresh dx.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32, Weight } from '../gpu/tensor.ts';
import { expect, noAlias } from './check.ts';
import { rowChunks, rowsOf, windowOf, type RowRange } from './chunks.ts';
import { matmul } from './matmul.ts';

const WG = 64;
const COPY: KernelSpec = { shader: 'lmhead.wgsl', entry: 'copy_block', params: ['rows:u32', 'cols:u32', 'srcStride:u32', 'dstStride:u32', 'srcBase:u32', 'dstBase:u32'], constants: { WG } };

interface Tiling {
  N: number;
  C: number;
  V: number;
  /** Rows of x (and of the logits) per tile. */
  rows: RowRange[];
  /** Rows of wte (columns of the logits) per tile. */
  vocab: RowRange[];
}

/** `grads`: the backward also binds wte's f32 gradient, which may need smaller chunks than an f16 wte. */
function tiling(gpu: Gpu, op: string, x: F32, wte: Weight, grads: boolean): Tiling {
  expect(op, 'x', x, [-1, -1]);
  const [N, C] = x.shape as [number, number];
  expect(op, 'wte', wte, [-1, C], wte.dtype);
  const V = wte.shape[0]!;
  const vocab = rowChunks(gpu, V, [wte.bytes / Math.max(1, V), ...(grads ? [C * 4] : [])], `${op}: wte ${wte}`);
  // A row range covers whole rows of the logits, so that a tile of it also fits.
  const rows = rowChunks(gpu, N, [V * 4, C * 4], `${op}: logits of ${V} columns`);
  return { N, C, V, rows, vocab };
}

/** Moves a tile between `tile` (rows × cols, contiguous) and columns [v0, v1) of rows r of `full` (N × V). */
function copyTile(gpu: Gpu, full: F32, tile: F32, [r0, r1]: RowRange, [v0, v1]: RowRange, V: number, toFull: boolean): void {
  const rows = r1 - r0;
  const cols = v1 - v0;
  const { view, base } = windowOf(gpu, full, r0 * V + v0, (rows - 1) * V + cols);
  const params = toFull ? { rows, cols, srcStride: cols, dstStride: V, srcBase: 0, dstBase: base } : { rows, cols, srcStride: V, dstStride: cols, srcBase: base, dstBase: 0 };
  gpu.dispatch(COPY, { params, tensors: toFull ? [tile, view] : [view, tile], workgroups: gpu.grid(rows * cols, WG), label: 'lmhead tile' });
}

/** logits [N×V] = x [N×C] · wte [V×C]ᵀ. */
export function lmHead(gpu: Gpu, x: F32, wte: Weight): F32 {
  const { N, V, rows, vocab } = tiling(gpu, 'lmHead', x, wte, false);
  if (rows.length === 1 && vocab.length === 1) return matmul(gpu, x, wte, { transB: true });
  const logits = gpu.empty([N, V], 'f32', 'logits');
  for (const r of rows) {
    const xr = rowsOf(x, r);
    if (vocab.length === 1) {
      matmul(gpu, xr, wte, { transB: true, out: rowsOf(logits, r) });
      continue;
    }
    for (const v of vocab) {
      const tile = matmul(gpu, xr, rowsOf(wte, v), { transB: true });
      copyTile(gpu, logits, tile, r, v, V, true);
      tile.release();
    }
  }
  return logits;
}

/**
 * Backward of lmHead: dwte += dlogitsᵀ·x (when given: a frozen table needs none), and a fresh
 * dx = dlogits·wte. Split, dx sums its
 * vocabulary chunks in order and dwte its row chunks, so the bits can differ from the unsplit sums.
 */
export function lmHeadBackward(gpu: Gpu, x: F32, wte: Weight, dlogits: F32, dwte?: F32): F32 {
  const op = 'lmHeadBackward';
  const { N, C, V, rows, vocab } = tiling(gpu, op, x, wte, dwte !== undefined);
  expect(op, 'dlogits', dlogits, [N, V]);
  if (dwte) {
    expect(op, 'dwte', dwte, [V, C]);
    noAlias(op, dwte, x, wte, dlogits);
  }
  if (rows.length === 1 && vocab.length === 1) {
    if (dwte) matmul(gpu, dlogits, x, { transA: true, accumulate: true, out: dwte });
    return matmul(gpu, dlogits, wte);
  }
  const dx = gpu.zeros([N, C], 'f32', 'lmHead.dx');
  for (const r of rows) {
    const xr = rowsOf(x, r);
    const dxr = rowsOf(dx, r);
    for (const v of vocab) {
      let tile = rowsOf(dlogits, r);
      if (vocab.length > 1) {
        tile = gpu.empty([r[1] - r[0], v[1] - v[0]], 'f32', 'lmHead.dtile');
        copyTile(gpu, dlogits, tile, r, v, V, false);
      }
      if (dwte) matmul(gpu, tile, xr, { transA: true, accumulate: true, out: rowsOf(dwte, v) });
      matmul(gpu, tile, rowsOf(wte, v), { accumulate: true, out: dxr });
      if (vocab.length > 1) tile.release();
    }
  }
  return dx;
}
