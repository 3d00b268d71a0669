// CPU references for reductions, accumulating in f64.

type Arr = ArrayLike<number>;

/** Sum of each row of an R×C matrix. */
export function sumRows(x: Arr, R: number, C: number): Float64Array {
  const out = new Float64Array(R);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[r]! += x[r * C + c]!;
  return out;
}

/** x (R×n) · y (n). */
export function dotRows(x: Arr, y: Arr, R: number, n: number): Float64Array {
  const out = new Float64Array(R);
  for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) out[r]! += x[r * n + j]! * y[j]!;
  return out;
}

export function meanRows(x: Arr, R: number, C: number): Float64Array {
  return sumRows(x, R, C).map((s) => s / C);
}

export function sum(x: Arr): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s;
}

/** Squared L2 norm of all the arrays together. */
export function sumSquares(...xs: Arr[]): number {
  let s = 0;
  for (const x of xs) for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
}
