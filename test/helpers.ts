// Shared test set-up: one Gpu per test file, closeness checks, seeded data.
import * as assert from 'uvu/assert';
import type { Gpu } from '../src/gpu/gpu.ts';
import { dawnGpu } from '../src/io/dawn.ts';
import { Rng } from '../src/util/random.ts';

let shared: Gpu | null = null;

/** The file's Gpu, created on first use; released by `releaseGpu` in the suite's `after`. */
export async function gpu(): Promise<Gpu> {
  shared ??= await dawnGpu();
  return shared;
}

export function releaseGpu(): void {
  shared?.destroy();
  shared = null;
}

export const rng = (seed = 1) => new Rng(seed);

/** Max |a-b| / (atol + rtol·|b|) must be ≤ 1; the message names the worst index. */
export function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5, atol = 1e-5, what = 'values'): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const ratio = Math.abs(a - e) / (atol + rtol * Math.abs(e));
    if (!(ratio <= worstRatio)) {
      worstRatio = ratio;
      worst = i;
      if (Number.isNaN(ratio)) break;
    }
  }
  if (worst >= 0 && !(worstRatio <= 1)) {
    assert.unreachable(`${what}: at [${worst}] got ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Same bits, element for element. */
export function sameBits(a: Float32Array, b: Float32Array, what = 'values'): void {
  assert.is(a.length, b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.unreachable(`${what}: bits differ at [${i}]: ${a[i]} vs ${b[i]}`);
}

/**
 * Central finite differences of a scalar function at x (x is perturbed in place and restored).
 * Check a CPU reference backward against this in f64, and the GPU backward against the reference;
 * a direct check of a GPU forward in f32 needs eps ~1e-2 and loose tolerances.
 */
export async function numericGrad(f: (x: Float64Array | Float32Array) => number | Promise<number>, x: Float64Array | Float32Array, eps = 1e-6, indices?: number[]): Promise<Float64Array> {
  const g = new Float64Array(x.length);
  for (const i of indices ?? x.keys()) {
    const v = x[i]!;
    x[i] = v + eps;
    const fp = await f(x);
    x[i] = v - eps;
    const fm = await f(x);
    x[i] = v;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}
