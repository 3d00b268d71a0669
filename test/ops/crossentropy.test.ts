import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IGNORE_INDEX, crossEntropyBackward, crossEntropyForward, crossEntropyMean } from '../../src/ops/crossentropy.ts';
import * as ref from '../../src/reference/transformer.ts';
import { close, gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// [N, V]: one logit, V below / at / past the workgroup (256), primes, GPT-2's 50257.
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 2],
  [5, 7],
  [4, 256],
  [6, 257],
  [2, 1009],
  [2, 50257],
];

/** Random targets, every third one ignored (row 0 always has a target). */
function targetsFor(N: number, V: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: N }, (_, i) => (i % 3 === 2 ? IGNORE_INDEX : r.int(V)));
}

test('CPU backward matches finite differences of the CPU forward (f64)', async () => {
  const [N, V] = [3, 5];
  const r = rng(1);
  const logits = Float64Array.from(r.uniformArray(N * V, -3, 3));
  const targets = targetsFor(N, V, 2);
  const dlosses = r.uniformArray(N);
  const loss = (x: ArrayLike<number>) => ref.crossEntropyForward(x, targets, N, V).losses.reduce((s, l, i) => s + l * dlosses[i]!, 0);
  close(ref.crossEntropyBackward(logits, targets, dlosses, N, V), await numericGrad(loss, logits), 1e-6, 1e-8, 'dlogits');
});

test('forward, mean and backward match the CPU reference on awkward shapes', async () => {
  const g = await gpu();
  for (const [N, V] of SHAPES) {
    const r = rng(N * 7 + V);
    const logits = r.uniformArray(N * V, -6, 6);
    const targets = targetsFor(N, V, V);
    const [tl, tt] = [g.tensor(logits, [N, V]), g.tensor(targets)];
    const f = crossEntropyForward(g, tl, tt);
    const m = crossEntropyMean(g, f.losses, tt);
    const dlogits = crossEntropyBackward(g, tl, tt, f.lse, m.dlosses);
    const [losses, lse, mean, dlosses, dl] = await g.readMany([f.losses, f.lse, m.mean, m.dlosses, dlogits]);
    const e = ref.crossEntropyForward(logits, targets, N, V);
    const count = targets.filter((t) => t !== IGNORE_INDEX).length;
    const edlosses = Array.from(targets, (t) => (t === IGNORE_INDEX ? 0 : 1 / count));
    const what = `N=${N} V=${V}`;
    close(losses!, e.losses, 1e-5, 1e-5, `losses ${what}`);
    close(lse!, e.lse, 1e-5, 1e-5, `lse ${what}`);
    close(mean!, [ref.crossEntropyMean(e.losses, targets)], 1e-5, 1e-6, `mean ${what}`);
    close(dlosses!, edlosses, 1e-6, 1e-12, `dlosses ${what}`);
    close(dl!, ref.crossEntropyBackward(logits, targets, edlosses, N, V), 1e-4, 1e-6, `dlogits ${what}`);
    for (const t of [tl, tt, f.losses, f.lse, m.mean, m.dlosses, dlogits]) t.release();
  }
});

test('huge logits stay finite; rows of any leading shape; backward accumulates, same bits', async () => {
  const g = await gpu();
  const [B, T, V] = [2, 3, 301];
  const r = rng(3);
  const logits = r.uniformArray(B * T * V, -1e4, 1e4);
  const targets = Uint32Array.from({ length: B * T }, () => r.int(V));
  const [tl, tt] = [g.tensor(logits, [B, T, V]), g.tensor(targets, [B, T])];
  const f = crossEntropyForward(g, tl, tt);
  assert.equal(f.losses.shape, [B, T]);
  close(await g.read(f.losses), ref.crossEntropyForward(logits, targets, B * T, V).losses, 1e-6, 1e-3, 'losses');
  const dlosses = g.tensor(r.uniformArray(B * T), [B, T]);
  const once = await g.read(crossEntropyBackward(g, tl, tt, f.lse, dlosses));
  const acc = crossEntropyBackward(g, tl, tt, f.lse, dlosses);
  sameBits(await g.read(acc), once, 'dlogits rerun');
  crossEntropyBackward(g, tl, tt, f.lse, dlosses, acc);
  close(await g.read(acc), once.map((v) => 2 * v), 1e-6, 1e-12, 'accumulated dlogits');
});

test('all rows ignored: mean 0, no gradient; bad targets and NaN logits give NaN', async () => {
  const g = await gpu();
  const V = 4;
  const logits = g.tensor(Float32Array.from([1, 2, 3, 4, 1, NaN, 3, 4, 1, 2, 3, 4]), [3, V]);
  const ignored = g.tensor(new Uint32Array(3).fill(IGNORE_INDEX));
  const f = crossEntropyForward(g, logits, ignored);
  const m = crossEntropyMean(g, f.losses, ignored);
  const [losses, mean, dlosses] = await g.readMany([f.losses, m.mean, m.dlosses]);
  assert.equal([...losses!, ...mean!, ...dlosses!], [0, 0, 0, 0, 0, 0, 0]);
  assert.equal([...(await g.read(crossEntropyBackward(g, logits, ignored, f.lse, m.dlosses)))], new Array(12).fill(0));
  const bad = g.tensor(Uint32Array.from([0, 1, V]));
  const fb = crossEntropyForward(g, logits, bad);
  const dl = await g.read(crossEntropyBackward(g, logits, bad, fb.lse, g.tensor(new Float32Array(3).fill(1))));
  const l = await g.read(fb.losses);
  assert.ok(Number.isFinite(l[0]) && Number.isNaN(l[1]) && Number.isNaN(l[2]), `losses ${l}`);
  assert.ok(dl.slice(0, V).every(Number.isFinite) && dl.slice(V).every(Number.isNaN), `dlogits ${dl}`);
});

test('shape errors and aliasing are named', async () => {
  const g = await gpu();
  const logits = g.zeros([4, 10]);
  const targets = g.zeros([4], 'u32');
  assert.throws(() => crossEntropyForward(g, g.zeros([10]), targets), /crossEntropyForward: logits must have shape \[…×V\]/);
  assert.throws(() => crossEntropyForward(g, logits, g.zeros([5], 'u32')), /crossEntropyForward: targets must have shape \[4\], got \[5\]/);
  assert.throws(() => crossEntropyForward(g, logits, g.zeros([4]) as never), /targets must be u32, got f32/);
  const f = crossEntropyForward(g, logits, targets);
  assert.throws(() => crossEntropyMean(g, g.zeros([3]), targets), /crossEntropyMean: losses must have shape \[4\]/);
  assert.throws(() => crossEntropyBackward(g, logits, targets, f.lse, g.zeros([3])), /crossEntropyBackward: dlosses must have shape \[4\]/);
  assert.throws(() => crossEntropyBackward(g, logits, targets, f.lse, f.losses, logits), /out must not be one of the inputs/);
});

test.run();
