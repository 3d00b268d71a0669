// CPU references for edit application: build the full delta α·M⊙Δ as a dense array and work from it.
import type { MaskBlock } from '../ops/edit.ts';

export type RefEdit =
  | { kind: 'dense'; mask: readonly MaskBlock[]; delta: ArrayLike<number>; offset?: number; alpha: number }
  | { kind: 'lowrank'; factors: ArrayLike<number>; offset?: number; rows: number; cols: number; rank: number; alpha: number };

/** Flat tensor index of each packed element, in packed order. */
export function maskIndices(mask: readonly MaskBlock[]): number[] {
  const out: number[] = [];
  for (const b of mask) for (let r = 0; r < b.runs; r++) for (let c = 0; c < b.run; c++) out.push(b.start + r * b.stride + c);
  return out;
}

/** α·M⊙Δ as a dense array of `size` elements. */
export function editDelta(e: RefEdit, size: number): Float64Array {
  const full = new Float64Array(size);
  const o = e.offset ?? 0;
  if (e.kind === 'dense') {
    maskIndices(e.mask).forEach((idx, k) => (full[idx] = e.alpha * e.delta[o + k]!));
    return full;
  }
  const { rows, cols, rank: r, factors: f } = e;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += f[o + i * r + k]! * f[o + rows * r + j * r + k]!;
      full[i * cols + j] = e.alpha * s;
    }
  }
  return full;
}

/** base + Σ edits. */
export function applyEdits(base: ArrayLike<number>, edits: readonly RefEdit[]): Float64Array {
  const out = Float64Array.from(base);
  for (const e of edits) editDelta(e, base.length).forEach((d, i) => (out[i] = out[i]! + d));
  return out;
}

/** Gradient wrt the action (same length as it; zero outside the edit's part) given dW'. */
export function editBackward(dOut: ArrayLike<number>, e: RefEdit): Float64Array {
  const o = e.offset ?? 0;
  if (e.kind === 'dense') {
    const g = new Float64Array(e.delta.length);
    maskIndices(e.mask).forEach((idx, k) => (g[o + k] = e.alpha * dOut[idx]!));
    return g;
  }
  const { rows, cols, rank: r, factors: f } = e;
  const g = new Float64Array(f.length);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const d = e.alpha * dOut[i * cols + j]!;
      for (let k = 0; k < r; k++) {
        const [u, v] = [o + i * r + k, o + rows * r + j * r + k];
        g[u] = g[u]! + d * f[v]!;
        g[v] = g[v]! + d * f[u]!;
      }
    }
  }
  return g;
}
