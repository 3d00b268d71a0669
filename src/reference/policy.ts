// CPU reference of the policy network (src/seal/policy.ts), in f64, written straight from the
// formulas: μ = relu(ctx·Wenc + benc)·Wdec + bdec.
import { relu, reluBackward } from './ops.ts';

type Arr = ArrayLike<number>;

export interface PolicyDims {
  inputDim: number;
  latent: number;
  actionDim: number;
}

/** y [N, out] = x [N, in]·w [in, out] + b [out]. */
function linear(x: Arr, w: Arr, b: Arr, N: number, inDim: number, outDim: number): Float64Array {
  const y = new Float64Array(N * outDim);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < outDim; j++) {
      let s = b[j]!;
      for (let k = 0; k < inDim; k++) s += x[n * inDim + k]! * w[k * outDim + j]!;
      y[n * outDim + j] = s;
    }
  }
  return y;
}

/** Accumulates dw += xᵀ·dy and db += Σ_rows dy; returns dx = dy·wᵀ. */
function linearBackward(x: Arr, w: Arr, dy: Arr, dw: Float64Array, db: Float64Array, N: number, inDim: number, outDim: number): Float64Array {
  const dx = new Float64Array(N * inDim);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < outDim; j++) {
      const g = dy[n * outDim + j]!;
      db[j] = db[j]! + g;
      for (let k = 0; k < inDim; k++) {
        dw[k * outDim + j] = dw[k * outDim + j]! + x[n * inDim + k]! * g;
        dx[n * inDim + k] = dx[n * inDim + k]! + g * w[k * outDim + j]!;
      }
    }
  }
  return dx;
}

const param = (params: ReadonlyMap<string, Arr>, name: string): Arr => {
  const p = params.get(name);
  if (!p) throw new RangeError(`reference policy: missing parameter ${name}`);
  return p;
};

export function policyForward(dims: PolicyDims, params: ReadonlyMap<string, Arr>, ctx: Arr, N: number): { h: Float64Array; mu: Float64Array } {
  const { inputDim: d, latent: L, actionDim: D } = dims;
  const h = relu(linear(ctx, param(params, 'enc.weight'), param(params, 'enc.bias'), N, d, L));
  const mu = linear(h, param(params, 'dec.weight'), param(params, 'dec.bias'), N, L, D);
  return { h, mu };
}

/** d(loss)/d(param) for every parameter but log_std, given dMu [N, D]. */
export function policyBackward(dims: PolicyDims, params: ReadonlyMap<string, Arr>, ctx: Arr, N: number, dMu: Arr): Map<string, Float64Array> {
  const { inputDim: d, latent: L, actionDim: D } = dims;
  const { h } = policyForward(dims, params, ctx, N);
  const grads = new Map<string, Float64Array>([
    ['enc.weight', new Float64Array(d * L)],
    ['enc.bias', new Float64Array(L)],
    ['dec.weight', new Float64Array(L * D)],
    ['dec.bias', new Float64Array(D)],
  ]);
  const dh = linearBackward(h, param(params, 'dec.weight'), dMu, grads.get('dec.weight')!, grads.get('dec.bias')!, N, L, D);
  linearBackward(ctx, param(params, 'enc.weight'), reluBackward(h, dh), grads.get('enc.weight')!, grads.get('enc.bias')!, N, d, L);
  return grads;
}
