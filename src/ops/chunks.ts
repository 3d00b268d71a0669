// Splitting work over tensors larger than one storage binding (Gpu.bindingLimit: 128 MiB on
// lavapipe and on many GPUs): an op binds ranges of rows as views of the one buffer, each view
// starting at a byte offset the adapter accepts (minStorageBufferOffsetAlignment). When everything
// fits, there is one range and the op dispatches exactly as it would unsplit.
import type { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

export type RowRange = readonly [number, number];

/**
 * [start, end) ranges covering `rows` rows of tensors whose rows take `rowBytes` bytes each: every
 * range's rows of every tensor fit one binding and start at an aligned offset. `what` names the
 * tensors in the error when even the smallest aligned range does not fit.
 */
export function rowChunks(gpu: Gpu, rows: number, rowBytes: readonly number[], what: string): RowRange[] {
  const limit = gpu.bindingLimit;
  const widest = Math.max(1, ...rowBytes);
  if (rows * widest <= limit) return [[0, rows]];
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  // Ranges start at multiples of `step` rows: an aligned byte offset in every tensor.
  const step = rowBytes.reduce((s, b) => {
    const need = align / gcd(b, align);
    return (s * need) / gcd(s, need);
  }, 1);
  const per = Math.floor(limit / widest / step) * step;
  if (per === 0) throw new RangeError(`${what}: ${step} rows of ${widest} bytes (the fewest that start aligned) are over the storage-binding limit of ${limit} bytes`);
  const out: RowRange[] = [];
  for (let r = 0; r < rows; r += per) out.push([r, Math.min(rows, r + per)]);
  return out;
}

/** Rows [r0, r1) of a tensor whose first dimension counts rows, as a view. */
export function rowsOf<T extends Tensor>(t: T, [r0, r1]: RowRange): T {
  if (t.shape.length === 0) throw new RangeError(`rowsOf: ${t} has no rows`);
  const rest = t.shape.slice(1);
  const per = rest.reduce((a, b) => a * b, 1);
  return (r0 === 0 && r1 === t.shape[0] ? t : t.view(r0 * per, [r1 - r0, ...rest])) as T;
}

/** Ranges of a tensor's elements for an elementwise kernel: one range unless it is over the limit. */
export const elementChunks = (gpu: Gpu, t: Tensor): RowRange[] => rowChunks(gpu, t.size, [t.bytes / Math.max(1, t.size)], `${t}`);

/** Elements [a, b) of a tensor, flattened, as a view. */
export const elementsOf = <T extends Tensor>(t: T, r: RowRange): T => rowsOf(t.reshape([t.size]) as T, r);

/**
 * Elements [start, start + count) of a tensor as a view that begins at `start` rounded down to an
 * aligned offset, and `base`, the elements from the view's start to `start` (a kernel adds it).
 */
export function windowOf<T extends Tensor>(gpu: Gpu, t: T, start: number, count: number): { view: T; base: number } {
  const elemBytes = t.bytes / Math.max(1, t.size);
  const align = gpu.limits.minStorageBufferOffsetAlignment / gcd(elemBytes, gpu.limits.minStorageBufferOffsetAlignment);
  if (t.bytes <= gpu.bindingLimit) return { view: t, base: start };
  const at = start - (start % align);
  const base = start - at;
  if ((base + count) * elemBytes > gpu.bindingLimit) throw new RangeError(`windowOf: ${count} elements of ${t} are over the storage-binding limit of ${gpu.bindingLimit} bytes`);
  return { view: t.view(at, [base + count]) as T, base };
}
