// Plain CPU reference ops: small and obviously right, in f64 accumulation. Every GPU kernel is
// checked against these; nothing fast belongs here.

/** C[M,N] = A[M,K]·B[K,N]. */
export function matmul(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float32Array {
  const c = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k]! * b[k * N + j]!;
      c[i * N + j] = s;
    }
  }
  return c;
}

export function add(a: Float32Array, b: Float32Array, alpha = 1): Float32Array {
  return a.map((x, i) => x + alpha * b[i]!);
}

export function mul(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => x * b[i]!);
}

export function scale(a: Float32Array, alpha: number): Float32Array {
  return a.map((x) => alpha * x);
}

const GELU_SCALE = Math.sqrt(2 / Math.PI);

/** GPT-2's GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function gelu(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => 0.5 * v * (1 + Math.tanh(GELU_SCALE * (v + 0.044715 * v ** 3))));
}

/** dinp = dout · gelu'(x). */
export function geluBackward(x: ArrayLike<number>, dout: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => {
    const th = Math.tanh(GELU_SCALE * (v + 0.044715 * v ** 3));
    const local = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * GELU_SCALE * (1 + 3 * 0.044715 * v * v);
    return local * dout[i]!;
  });
}
