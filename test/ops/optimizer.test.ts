import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { adamw, clipGradNorm, globalNorm, type AdamWConfig } from '../../src/ops/optimizer.ts';
import * as ref from '../../src/reference/optimizer.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// Around the workgroup (256) and the reduction's chunks (1024, 4096), and odd ones.
const SIZES = [1, 7, 255, 257, 4095, 4097, 10007];

test('AdamW matches the CPU reference over several steps', async () => {
  const g = await gpu();
  const r = rng(11);
  const cfg: AdamWConfig = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  for (const n of [1, 13, 257, 1031]) {
    const p = r.uniformArray(n);
    const [m, v] = [new Float32Array(n), new Float32Array(n)];
    const [tp, tm, tv] = [g.tensor(p), g.zeros([n]), g.zeros([n])];
    for (let step = 1; step <= 5; step++) {
      const grad = r.uniformArray(n, -2, 2);
      const tg = g.tensor(grad);
      adamw(g, tp, tg, tm, tv, step, cfg);
      ref.adamw(p, grad, m, v, step, cfg);
      tg.release();
    }
    const [gp, gm, gv] = await g.readMany([tp, tm, tv]);
    close(gm!, m, 1e-5, 1e-7, `m n=${n}`);
    close(gv!, v, 1e-5, 1e-7, `v n=${n}`);
    close(gp!, p, 1e-5, 1e-6, `param n=${n}`);
    for (const t of [tp, tm, tv]) t.release();
  }
});

test('AdamW: the first step moves each weight by about lr against the gradient sign', async () => {
  const g = await gpu();
  const p = g.tensor(new Float32Array([1, 1, 1]));
  const grad = g.tensor(new Float32Array([3, -0.001, 0]));
  adamw(g, p, grad, g.zeros([3]), g.zeros([3]), 1, { lr: 0.1, weightDecay: 0 });
  close(await g.read(p), [0.9, 1.1, 1], 1e-4, 1e-4);
});

test('the global norm matches the reference across many tensors', async () => {
  const g = await gpu();
  const r = rng(12);
  const xs = SIZES.map((n) => r.uniformArray(n, -3, 3));
  close(await g.read(globalNorm(g, xs.map((x) => g.tensor(x)))), [Math.sqrt(ref.squaredNorm(xs))], 1e-5, 0, 'norm');
  assert.equal(await g.read(globalNorm(g, [g.zeros([0])])), new Float32Array([0]));
});

test('clipGradNorm scales by min(1, maxNorm/(norm+1e-6)) and returns the norm', async () => {
  const g = await gpu();
  const r = rng(13);
  for (const maxNorm of [0.5, 1e6]) {
    const xs = SIZES.map((n) => r.uniformArray(n));
    const ts = xs.map((x) => g.tensor(x));
    const norm = clipGradNorm(g, ts, maxNorm);
    const expected = ref.clipGradNorm(xs, maxNorm);
    const out = await g.readMany([norm, ...ts]);
    close(out[0]!, [expected], 1e-5, 0, 'norm');
    xs.forEach((x, i) => close(out[i + 1]!, x, 1e-5, 1e-7, `grad ${i} maxNorm ${maxNorm}`));
    if (maxNorm === 1e6) xs.forEach((x, i) => sameBits(out[i + 1] as Float32Array, x, 'unclipped gradients are untouched'));
    for (const t of [norm, ...ts]) t.release();
  }
});

test('clipGradNorm per group: each group of stacked gradients is clipped by its own norm, as if alone', async () => {
  const g = await gpu();
  const r = rng(15);
  const G = 3;
  // Per tensor: G slices of a prime size; group 1 is small enough to pass unclipped.
  const slices = [7, 300, 1].map((n) => Array.from({ length: G }, (_, k) => r.uniformArray(n, k === 1 ? -1e-3 : -2, k === 1 ? 1e-3 : 2)));
  const ts = slices.map((s) => g.tensor(Float32Array.from(s.flatMap((x) => [...x])), [G, s[0]!.length]));
  const norms = clipGradNorm(g, ts, 0.5, G);
  const out = await g.readMany([norms, ...ts]);
  for (let k = 0; k < G; k++) {
    const alone = slices.map((s) => Float32Array.from(s[k]!));
    const expected = ref.clipGradNorm(alone, 0.5);
    close([out[0]![k]!], [expected], 1e-5, 0, `norm of group ${k}`);
    alone.forEach((x, i) => close((out[i + 1] as Float32Array).subarray(k * x.length, (k + 1) * x.length), x, 1e-5, 1e-7, `group ${k} tensor ${i}`));
  }
  assert.throws(() => clipGradNorm(g, [g.zeros([2, 3])], 1, G), /sumSquaresGroups: xs\[0\] must have 3 groups on its first axis/);
  for (const t of [norms, ...ts]) t.release();
});

test('the norm is deterministic', async () => {
  const g = await gpu();
  const r = rng(14);
  const ts = SIZES.map((n) => g.tensor(r.uniformArray(n)));
  const a = await g.read(globalNorm(g, ts));
  const b = await g.read(globalNorm(g, ts));
  sameBits(a, b);
});

test('NaN propagates: a NaN gradient makes the norm and every clipped gradient NaN', async () => {
  const g = await gpu();
  const a = g.tensor(new Float32Array([1, NaN, 2]));
  const b = g.tensor(new Float32Array([3, 4]));
  const norm = clipGradNorm(g, [a, b], 1);
  const [n, gb] = await g.readMany([norm, b]);
  assert.ok(Number.isNaN(n![0]));
  assert.ok(Array.from(gb!).every(Number.isNaN), `gradients: ${gb}`);
  const p = g.tensor(new Float32Array([1, 2]));
  adamw(g, p, g.tensor(new Float32Array([NaN, 1])), g.zeros([2]), g.zeros([2]), 1, { lr: 0.1 });
  const pv = await g.read(p);
  assert.ok(Number.isNaN(pv[0]) && Number.isFinite(pv[1]));
});

test('bad input gives named errors', async () => {
  const g = await gpu();
  const [p, m, v] = [g.zeros([2, 3]), g.zeros([2, 3]), g.zeros([2, 3])];
  assert.throws(() => adamw(g, p, g.zeros([3, 2]), m, v, 1, { lr: 1 }), /adamw: grad must have shape \[2×3\], got \[3×2\]/);
  assert.throws(() => adamw(g, p, g.zeros([2, 3], 'u32') as never, m, v, 1, { lr: 1 }), /adamw: grad must be f32/);
  assert.throws(() => adamw(g, p, p, m, v, 1, { lr: 1 }), /adamw: out must not be one of the inputs/);
  assert.throws(() => adamw(g, p, g.zeros([2, 3]), m, m, 1, { lr: 1 }), /adamw: out must not be one of the inputs/);
  assert.throws(() => adamw(g, p, g.zeros([2, 3]), m, v, 0, { lr: 1 }), /adamw: step must be an integer ≥ 1/);
  assert.throws(() => adamw(g, p, g.zeros([2, 3]), m, v, 1, { lr: NaN }), /'lr' must be a finite number/);
  assert.throws(() => clipGradNorm(g, [p, p], 1), /clipGradNorm: a gradient appears twice/);
  assert.throws(() => clipGradNorm(g, [p], 0), /clipGradNorm: maxNorm must be a positive number/);
});

test.run();
