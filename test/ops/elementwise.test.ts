import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { add, axpy, mul, scale } from '../../src/ops/elementwise.ts';
import * as ref from '../../src/reference/ops.ts';
import { close, gpu, releaseGpu, rng } from '../helpers.ts';

test.after(releaseGpu);

// Sizes around the workgroup (256) and odd ones.
const SIZES = [1, 3, 255, 256, 257, 1000];

test('add, mul, scale and axpy match the CPU reference', async () => {
  const g = await gpu();
  const r = rng(3);
  for (const n of SIZES) {
    const a = r.uniformArray(n);
    const b = r.uniformArray(n);
    const [ta, tb] = [g.tensor(a), g.tensor(b)];
    const outs = [add(g, ta, tb, -0.5), mul(g, ta, tb), scale(g, ta, 3)];
    const acc = g.tensor(b);
    axpy(g, 2, ta, acc);
    const [s, m, sc, ax] = await g.readMany([...outs, acc]);
    close(s!, ref.add(a, b, -0.5), 1e-6, 1e-6, `add n=${n}`);
    close(m!, ref.mul(a, b), 1e-6, 1e-6, `mul n=${n}`);
    close(sc!, ref.scale(a, 3), 1e-6, 1e-6, `scale n=${n}`);
    close(ax!, ref.add(b, a, 2), 1e-6, 1e-6, `axpy n=${n}`);
    for (const t of [ta, tb, acc, ...outs]) t.release();
  }
});

test('inputs may repeat; an output may not alias an input', async () => {
  const g = await gpu();
  const a = g.tensor(new Float32Array([1, 2, 3]));
  const sq = mul(g, a, a);
  assert.equal(await g.read(sq), new Float32Array([1, 4, 9]));
  assert.throws(() => add(g, a, sq, 1, a), /out must not be one of the inputs/);
  assert.throws(() => axpy(g, 1, a, a), /out must not be one of the inputs/);
  a.release();
  sq.release();
});

test('shape and dtype mismatches are named', async () => {
  const g = await gpu();
  const a = g.zeros([2, 3]);
  const b = g.zeros([3, 2]);
  const u = g.zeros([2, 3], 'u32') as never;
  assert.throws(() => add(g, a, b), /add: b must have shape \[2×3\], got \[3×2\]/);
  assert.throws(() => mul(g, a, u), /mul: b must be f32, got u32/);
  assert.throws(() => scale(g, u, 2), /scale: x must be f32/);
  assert.throws(() => add(g, a, a, 1, g.zeros([6])), /out must have shape \[2×3\]/);
  for (const t of [a, b, u]) t.release();
});

test('NaN and Inf propagate rather than vanish', async () => {
  const g = await gpu();
  const a = g.tensor(new Float32Array([NaN, Infinity, 1]));
  const v = await g.read(scale(g, a, 2));
  assert.ok(Number.isNaN(v[0]));
  assert.is(v[1], Infinity);
  assert.is(v[2], 2);
});

test.run();
