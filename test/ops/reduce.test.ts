import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dotRows, meanRows, sum, sumRows, sumSquares } from '../../src/ops/reduce.ts';
import * as ref from '../../src/reference/reduce.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

const absSum = (x: Float32Array) => x.reduce((s, v) => s + Math.abs(v), 0);

test('sumRows and meanRows match the CPU reference on awkward shapes', async () => {
  const g = await gpu();
  const r = rng(1);
  // Rows below / at / past the workgroup (256) and primes; a 1-D x gives one row.
  for (const shape of [[1], [1, 1], [3, 7], [5, 256], [4, 257], [2, 3, 1009], [70000, 2]]) {
    const C = shape.at(-1)!;
    const R = shape.reduce((a, b) => a * b, 1) / C;
    const x = r.uniformArray(R * C);
    const tx = g.tensor(x, shape);
    const [s, m] = [sumRows(g, tx), meanRows(g, tx)];
    assert.equal(s.shape, shape.length > 1 ? shape.slice(0, -1) : [1]);
    const [gs, gm] = await g.readMany([s, m]);
    close(gs!, ref.sumRows(x, R, C), 1e-5, 1e-6 * Math.sqrt(C), `sumRows ${shape}`);
    close(gm!, ref.meanRows(x, R, C), 1e-5, 1e-6 / Math.sqrt(C), `meanRows ${shape}`);
    for (const t of [tx, s, m]) t.release();
  }
});

test('dotRows matches the CPU reference, from one element to a long reduction', async () => {
  const g = await gpu();
  const r = rng(4);
  for (const [R, n] of [[1, 1], [3, 7], [4, 255], [2, 65537], [8, 1000]] as const) {
    const x = r.uniformArray(R * n);
    const y = r.uniformArray(n);
    const [tx, ty] = [g.tensor(x, [R, n]), g.tensor(y, [n])];
    const d = dotRows(g, tx, ty);
    assert.equal(d.shape, [R]);
    close(await g.read(d), ref.dotRows(x, y, R, n), 1e-5, 1e-6 * Math.sqrt(n), `dotRows ${R}×${n}`);
    for (const t of [tx, ty, d]) t.release();
  }
  assert.throws(() => dotRows(g, g.zeros([2, 3]), g.zeros([4])), /dotRows: y/);
});

test('sum and sumSquares match the CPU reference, up to millions of elements, same bits on rerun', async () => {
  const g = await gpu();
  const r = rng(2);
  for (const n of [0, 1, 255, 1025, 262_147, 3_000_017]) {
    const x = r.uniformArray(n);
    const tx = g.tensor(x);
    const [s, q, q2] = [sum(g, tx), sumSquares(g, tx), sumSquares(g, tx)];
    const [gs, gq, gq2] = await g.readMany([s, q, q2]);
    close(gs!, [ref.sum(x)], 0, 1e-6 * absSum(x) + 1e-30, `sum n=${n}`);
    close(gq!, [ref.sumSquares(x)], 1e-5, 1e-30, `sumSquares n=${n}`);
    sameBits(gq as Float32Array, gq2 as Float32Array, `sumSquares rerun n=${n}`);
    for (const t of [tx, s, q, q2]) t.release();
  }
});

test('sumSquares of several tensors is the squared norm of them all', async () => {
  const g = await gpu();
  const r = rng(3);
  const xs = [r.uniformArray(5), r.uniformArray(300_001), r.uniformArray(0), r.uniformArray(77)];
  const ts = xs.map((x) => g.tensor(x));
  close(await g.read(sumSquares(g, ts)), [ref.sumSquares(...xs)], 1e-5, 0, 'global norm²');
  assert.throws(() => sumSquares(g, [ts[0]!, g.zeros([2], 'u32') as never]), /sumSquares: xs\[1\] must be f32/);
});

test('NaN and Inf propagate', async () => {
  const g = await gpu();
  const x = g.tensor(Float32Array.from([1, NaN, 2, 3, Infinity, 4]), [2, 3]);
  const rows = await g.read(sumRows(g, x));
  assert.ok(Number.isNaN(rows[0]) && rows[1] === Infinity);
  assert.ok(Number.isNaN(await g.scalar(sumSquares(g, x))));
});

test('shape errors and aliasing are named', async () => {
  const g = await gpu();
  const x = g.zeros([3, 4]);
  assert.throws(() => sumRows(g, x, g.zeros([4])), /sumRows: out must have shape \[3\], got \[4\]/);
  assert.throws(() => meanRows(g, g.zeros([3, 0])), /meanRows: the rows of x are empty/);
  assert.throws(() => sum(g, g.zeros([3], 'i32') as never), /sum: x must be f32, got i32/);
  const row = g.zeros([1]);
  assert.throws(() => sumRows(g, row, row), /out must not be one of the inputs/);
});

test.run();
