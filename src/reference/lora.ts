// CPU reference for the LoRA ops (src/ops/lora.ts), in f64: y = s·(x·A)·B for x [n, in],
// A [in, r], B [r, out], and its gradients given dy.
import { gemm } from './matmul.ts';

export interface RefLora {
  a: ArrayLike<number>;
  b: ArrayLike<number>;
  nIn: number;
  r: number;
  nOut: number;
  scale: number;
}

/** The adapter's term s·(x·A)·B, [n, out]. */
export function loraTerm(x: ArrayLike<number>, n: number, f: RefLora): Float64Array {
  const y = new Float64Array(n * f.nOut);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < f.r; t++) {
      let h = 0;
      for (let k = 0; k < f.nIn; k++) h += x[i * f.nIn + k]! * f.a[k * f.r + t]!;
      for (let j = 0; j < f.nOut; j++) y[i * f.nOut + j] = y[i * f.nOut + j]! + f.scale * h * f.b[t * f.nOut + j]!;
    }
  }
  return y;
}

/** Gradients of Σ dy ⊙ loraTerm(x) with respect to A, B and x. */
export function loraTermBackward(x: ArrayLike<number>, n: number, f: RefLora, dy: ArrayLike<number>): { da: Float32Array; db: Float32Array; dx: Float32Array } {
  const { nIn, r, nOut, scale } = f;
  const h = gemm(x, f.a, n, nIn, r);
  const db = gemm(h, dy, r, n, nOut, { transA: true, alpha: scale });
  const dh = gemm(dy, f.b, n, nOut, r, { transB: true, alpha: scale });
  const da = gemm(x, dh, nIn, n, r, { transA: true });
  const dx = gemm(dh, f.a, n, r, nIn, { transB: true });
  return { da, db, dx };
}

/** W + sign·s·A·B, or with `transposed` (W [out, in]) W + sign·s·(A·B)ᵀ. */
export function loraMerge(w: ArrayLike<number>, f: RefLora, sign = 1, transposed = false): Float64Array {
  const ab = gemm(f.a, f.b, f.nIn, f.r, f.nOut);
  return Float64Array.from(w, (v, i) => v + sign * f.scale * ab[transposed ? (i % f.nIn) * f.nOut + Math.floor(i / f.nIn) : i]!);
}
