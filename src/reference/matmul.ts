// CPU references for the matmul family: plain loops accumulating in f64. The GPU kernels and the
// benchmarks' plain-JavaScript peer are checked against these; nothing fast belongs here.
import type { Gemm } from '../ops/matmul.ts';
import { geluOf } from './ops.ts';

export interface GemmOptions {
  /** A is stored [K, M] (per batch) and used transposed. */
  transA?: boolean;
  /** B is stored [N, K] (per batch) and used transposed. */
  transB?: boolean;
  /** Number of batches; A and B each either have it (batch stride) or are shared. */
  batch?: number;
  aBatched?: boolean;
  bBatched?: boolean;
  alpha?: number;
  /** Row vector [N] added to every row. */
  bias?: Float32Array;
  gelu?: boolean;
  /** Previous C [batch, M, N]; the result is added to it. */
  accumulate?: Float32Array;
}

/** C[b] = [accumulate +] act(alpha · op(A[b]) · op(B[b]) + bias), C contiguous [batch, M, N]. */
export function gemm(a: ArrayLike<number>, b: ArrayLike<number>, M: number, K: number, N: number, o: GemmOptions = {}): Float32Array {
  const batch = o.batch ?? 1;
  const alpha = o.alpha ?? 1;
  const c = new Float32Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const aOff = o.aBatched === false ? 0 : z * M * K;
    const bOff = o.bBatched === false ? 0 : z * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[aOff + (o.transA ? k * M + i : i * K + k)]!;
          const bv = b[bOff + (o.transB ? j * K + k : k * N + j)]!;
          s += av * bv;
        }
        let y = alpha * s + (o.bias ? o.bias[j]! : 0);
        if (o.gelu) y = geluOf(y);
        const at = (z * M + i) * N + j;
        c[at] = y + (o.accumulate ? o.accumulate[at]! : 0);
      }
    }
  }
  return c;
}

/**
 * C(b,i,j) = alpha·Σ_k A(b,i,k)·B(b,k,j) (+ the old C(b,i,j) with `accumulate`) on strided views, as
 * src/ops/matmul.ts's Gemm addresses them; returns a copy of `c` with the addressed elements set.
 */
export function gemmStrided(a: ArrayLike<number>, b: ArrayLike<number>, c: ArrayLike<number>, g: Gemm, alpha = 1, accumulate = false): Float32Array {
  const out = Float32Array.from(c);
  for (let z = 0; z < g.batch * g.inner; z++) {
    const [zb, zh] = [Math.floor(z / g.inner), z % g.inner];
    const [ao, bo, co] = [g.oA + zb * g.sAb + zh * g.sAh, g.oB + zb * g.sBb + zh * g.sBh, g.oC + zb * g.sCb + zh * g.sCh];
    for (let i = 0; i < g.M; i++) {
      for (let j = 0; j < g.N; j++) {
        let s = 0;
        for (let k = 0; k < g.K; k++) s += a[ao + i * g.sAi + k * g.sAk]! * b[bo + k * g.sBk + j * g.sBj]!;
        const at = co + i * g.sCi + j;
        out[at] = alpha * s + (accumulate ? c[at]! : 0);
      }
    }
  }
  return out;
}

/** C[M,N] = A[M,K]·B[K,N]. */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, M: number, K: number, N: number): Float32Array {
  return gemm(a, b, M, K, N);
}

/** Gradients of y = x·W + bias, x [M,K], W [K,N]: dx = dy·Wᵀ, dW = xᵀ·dy, dbias = Σ_rows dy (f64). */
export function linearBackward(x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, M: number, K: number, N: number) {
  const dx = new Float64Array(M * K);
  const dw = new Float64Array(K * N);
  const dbias = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const g = dy[i * N + j]!;
      dbias[j]! += g;
      for (let k = 0; k < K; k++) {
        dx[i * K + k]! += g * w[k * N + j]!;
        dw[k * N + j]! += x[i * K + k]! * g;
      }
    }
  }
  return { dx, dw, dbias };
}
