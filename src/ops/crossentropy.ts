// Cross-entropy fused with softmax over the last dim V of logits (…, V); targets are u32 with
// IGNORE_INDEX for positions without a loss. Forward saves lse (logsumexp per row) so backward is
// elementwise; backward accumulates (+=) into dlogits, as llm.c does, or returns a fresh one (the
// gradient convention, docs/ARCHITECTURE.md).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32, Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';
import { rowChunks, rowsOf, type RowRange } from './chunks.ts';

export const IGNORE_INDEX = 0xffffffff;

const WG = 256;
const spec = (entry: string): KernelSpec => ({ shader: 'crossentropy.wgsl', entry, params: ['N:u32', 'V:u32', 'row0:u32'], constants: { WG } });
const FORWARD = spec('forward');
const BACKWARD = spec('backward');
const MEAN = spec('mean');

type Targets = Tensor<'u32'>;

function dims(op: string, logits: F32, targets: Targets) {
  if (logits.shape.length < 2) throw new ShapeError(`${op}: logits must have shape […×V] with at least one row dim, got ${logits}`);
  const V = logits.shape.at(-1)!;
  const rows = logits.shape.slice(0, -1);
  expect(op, 'logits', logits, logits.shape);
  expect(op, 'targets', targets, rows, 'u32');
  return { N: targets.size, V, rows };
}

/** Row ranges of the logits (N×V) that fit one binding each, and a range's rows as a view. */
function logitRows(gpu: Gpu, op: string, t: F32, N: number, V: number): { chunks: RowRange[]; rowsOf: (r: RowRange) => F32 } {
  const flat = t.reshape([N, V]);
  return { chunks: rowChunks(gpu, N, [V * 4], `${op}: logits ${t}`), rowsOf: (r) => rowsOf(flat, r) };
}

/** Workgroups for one row per y (folded into z past the limit), WG columns per x. */
function rowGrid(gpu: Gpu, N: number, V: number): [number, number, number] {
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  return [Math.ceil(V / WG), Math.min(N, maxDim), Math.ceil(N / maxDim)];
}

export interface CrossEntropyOut {
  /** Per-row loss, 0 where the target is IGNORE_INDEX. */
  losses: F32;
  /** Per-row logsumexp of the logits; backward needs it. */
  lse: F32;
}

/** losses[i] = logsumexp(logits[i]) - logits[i, targets[i]]; NaN for a target ≥ V. */
export function crossEntropyForward(gpu: Gpu, logits: F32, targets: Targets): CrossEntropyOut {
  const { N, V, rows } = dims('crossEntropyForward', logits, targets);
  const losses = gpu.empty(rows);
  const lse = gpu.empty(rows);
  const l = logitRows(gpu, 'crossEntropyForward', logits, N, V);
  for (const r of l.chunks) {
    const n = r[1] - r[0];
    gpu.dispatch(FORWARD, { params: { N: n, V, row0: r[0] }, tensors: [l.rowsOf(r), targets, losses, lse], workgroups: gpu.grid(n, 1) });
  }
  return { losses, lse };
}

/**
 * The mean loss over rows with a target ([1]; 0 when there are none) and its gradient wrt each
 * row's loss (1/count, 0 for ignored rows): the `dlosses` that crossEntropyBackward takes.
 */
export function crossEntropyMean(gpu: Gpu, losses: F32, targets: Targets): { mean: F32; dlosses: F32 } {
  expect('crossEntropyMean', 'losses', losses, targets.shape);
  expect('crossEntropyMean', 'targets', targets, losses.shape, 'u32');
  const mean = gpu.empty([1]);
  const dlosses = gpu.empty(losses.shape);
  gpu.dispatch(MEAN, { params: { N: losses.size, V: 0, row0: 0 }, tensors: [losses, targets, mean, dlosses], workgroups: [1] });
  return { mean, dlosses };
}

/** dlogits += (softmax(logits) - onehot(target))·dlosses per row; ignored rows get nothing. */
export function crossEntropyBackward(gpu: Gpu, logits: F32, targets: Targets, lse: F32, dlosses: F32, dlogits?: F32): F32 {
  const op = 'crossEntropyBackward';
  const { N, V, rows } = dims(op, logits, targets);
  expect(op, 'lse', lse, rows);
  expect(op, 'dlosses', dlosses, rows);
  const grad = dlogits ?? gpu.zeros(logits.shape);
  expect(op, 'dlogits', grad, logits.shape);
  noAlias(op, grad, logits, lse, dlosses);
  const l = logitRows(gpu, op, logits, N, V);
  const d = logitRows(gpu, op, grad, N, V);
  for (const r of l.chunks) {
    const n = r[1] - r[0];
    gpu.dispatch(BACKWARD, { params: { N: n, V, row0: r[0] }, tensors: [l.rowsOf(r), targets, lse, dlosses, d.rowsOf(r)], workgroups: rowGrid(gpu, n, V) });
  }
  return grad;
}
