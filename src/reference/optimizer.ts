// CPU references for the optimiser ops: f64 arithmetic, state stored as f32 between steps as on the GPU.
import type { AdamWConfig } from '../ops/optimizer.ts';

/** One AdamW step in place (llm.c's formula). */
export function adamw(param: Float32Array, grad: ArrayLike<number>, m: Float32Array, v: Float32Array, step: number, cfg: AdamWConfig): void {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01 } = cfg;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    m[i] = beta1 * m[i]! + (1 - beta1) * g;
    v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
    const mHat = m[i]! / (1 - beta1 ** step);
    const vHat = v[i]! / (1 - beta2 ** step);
    param[i] = param[i]! - lr * (mHat / (Math.sqrt(vHat) + eps) + weightDecay * param[i]!);
  }
}

export function squaredNorm(xs: readonly ArrayLike<number>[]): number {
  let s = 0;
  for (const x of xs) for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
}

/** Scales the gradients in place like torch.nn.utils.clip_grad_norm_; returns the norm before clipping. */
export function clipGradNorm(grads: Float32Array[], maxNorm: number): number {
  const norm = Math.sqrt(squaredNorm(grads));
  const c = Math.min(1, maxNorm / (norm + 1e-6));
  for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = g[i]! * c;
  return norm;
}
