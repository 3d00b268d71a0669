import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { matmul } from '../../src/ops/matmul.ts';
import * as ref from '../../src/reference/ops.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// Shapes that are not multiples of the tile (64 columns × 8 rows) nor of 4, and degenerate ones.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 5],
  [3, 5, 7],
  [8, 64, 4],
  [9, 65, 12],
  [17, 31, 33],
  [64, 100, 48],
  [130, 3, 257],
  [5, 0, 3],
];

test('matmul matches the CPU reference on awkward shapes', async () => {
  const g = await gpu();
  const r = rng(4);
  for (const [M, K, N] of SHAPES) {
    const a = r.uniformArray(M * K);
    const b = r.uniformArray(K * N);
    const [ta, tb] = [g.tensor(a, [M, K]), g.tensor(b, [K, N])];
    const c = matmul(g, ta, tb);
    assert.equal(c.shape, [M, N]);
    close(await g.read(c), ref.matmul(a, b, M, K, N), 1e-5, 1e-5 * Math.sqrt(K + 1), `matmul ${M}×${K}×${N}`);
    for (const t of [ta, tb, c]) t.release();
  }
});

test('matmul into a given output overwrites it (K = 0 gives zeros)', async () => {
  const g = await gpu();
  const out = g.tensor(new Float32Array(6).fill(9), [2, 3]);
  matmul(g, g.zeros([2, 0]), g.zeros([0, 3]), out);
  assert.equal(await g.read(out), new Float32Array(6));
});

test('matmul is deterministic', async () => {
  const g = await gpu();
  const r = rng(5);
  const a = g.tensor(r.uniformArray(33 * 70), [33, 70]);
  const b = g.tensor(r.uniformArray(70 * 36), [70, 36]);
  const c1 = await g.read(matmul(g, a, b));
  const c2 = await g.read(matmul(g, a, b));
  sameBits(c1, c2);
});

test('matmul shape errors are named', async () => {
  const g = await gpu();
  const a = g.zeros([2, 3]);
  assert.throws(() => matmul(g, a, g.zeros([4, 2])), /matmul: b must have shape \[3×\*\], got \[4×2\]/);
  assert.throws(() => matmul(g, g.zeros([6]), a), /must be 2-D/);
  assert.throws(() => matmul(g, a, g.zeros([3, 2]), g.zeros([2, 3])), /out must have shape \[2×2\]/);
  assert.throws(() => matmul(g, a, g.zeros([3, 2], 'u32') as never), /b must be f32/);
});

test.run();
