// Plain CPU reference ops: small and obviously right, in f64. Every GPU kernel is checked against
// these; nothing fast belongs here. The matmul family's reference is matmul.ts.

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

/** GPT-2's GELU of one value, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluOf(v: number): number {
  return 0.5 * v * (1 + Math.tanh(GELU_SCALE * (v + 0.044715 * v ** 3)));
}

/** d gelu(v) / dv. */
export function geluGradOf(v: number): number {
  const th = Math.tanh(GELU_SCALE * (v + 0.044715 * v ** 3));
  return 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * GELU_SCALE * (1 + 3 * 0.044715 * v * v);
}

export function gelu(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, geluOf);
}

/** dinp = dout · gelu'(x). */
export function geluBackward(x: ArrayLike<number>, dout: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => geluGradOf(v) * dout[i]!);
}

/** relu'(0) = 0, as in PyTorch. */
export const relu = (x: ArrayLike<number>): Float64Array => Float64Array.from(x, (v) => (v > 0 ? v : v <= 0 ? 0 : NaN));

export const reluBackward = (y: ArrayLike<number>, dy: ArrayLike<number>): Float64Array => Float64Array.from(y, (v, i) => (v > 0 ? dy[i]! : v <= 0 ? 0 : NaN));

/** Rows of an (R×C) matrix by index. */
export function gatherRows(x: ArrayLike<number>, C: number, idx: readonly number[]): Float64Array {
  const out = new Float64Array(idx.length * C);
  idx.forEach((r, i) => {
    for (let c = 0; c < C; c++) out[i * C + c] = x[r * C + c]!;
  });
  return out;
}
