import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gaussianSample, relu, reluBackward } from '../../src/ops/policy.ts';
import * as ref from '../../src/reference/policy.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

const r = rng(17);
// Around the workgroup (256), primes, and a long row.
const SIZES = [1, 3, 13, 255, 256, 257, 4099];
// [N, D] for the row-broadcast sample.
const SHAPES: [number, number][] = [
  [1, 1],
  [1, 13],
  [17, 7],
  [3, 4099],
];

/** Uniform values with some exact zeros and negative zeros, where ReLU's subgradient matters. */
function withZeros(n: number): Float32Array {
  const a = r.uniformArray(n, -2, 2);
  for (let i = 0; i < n; i += 5) a[i] = i % 10 === 0 ? 0 : -0;
  return a;
}

test('relu and reluBackward match the reference exactly, zeros included', async () => {
  const g = await gpu();
  for (const n of SIZES) {
    const x = withZeros(n);
    const dy = r.uniformArray(n, -1, 1);
    const [tx, tdy] = [g.tensor(x), g.tensor(dy)];
    const y = relu(g, tx);
    const fromOutput = reluBackward(g, y, tdy);
    const fromInput = reluBackward(g, tx, tdy);
    const [gy, gdy, gdx] = (await g.readMany([y, fromOutput, fromInput])) as Float32Array[];
    const expectedY = Float32Array.from(ref.relu(x));
    sameBits(gy!, expectedY, `relu n=${n}`);
    sameBits(gdy!, Float32Array.from(ref.reluBackward(expectedY, dy)), `reluBackward(y) n=${n}`);
    sameBits(gdx!, gdy!, `reluBackward(x) = reluBackward(relu(x)) n=${n}`);
    for (const t of [tx, tdy, y, fromOutput, fromInput]) t.release();
  }
  // The subgradient at 0 is 0 (PyTorch's), from either sign of zero.
  const z = g.tensor(Float32Array.of(0, -0, 1e-30, -1e-30));
  const dz = await g.read(reluBackward(g, z, g.tensor(Float32Array.of(5, 5, 5, 5))));
  assert.equal(Array.from(dz), [0, 0, 5, 0]);
});

test('gaussianSample matches the reference, log σ broadcast over rows', async () => {
  const g = await gpu();
  for (const [N, D] of SHAPES) {
    const mu = r.uniformArray(N * D, -1, 1);
    const logStd = r.uniformArray(D, -2, 1);
    const noise = r.normalArray(N * D);
    const out = gaussianSample(g, g.tensor(mu, [N, D]), g.tensor(logStd), g.tensor(noise, [N, D]));
    assert.equal(out.shape, [N, D]);
    close(await g.read(out), ref.gaussianSample(mu, logStd, noise, D), 1e-6, 1e-6, `sample ${N}×${D}`);
  }
});

test('policy kernels are deterministic', async () => {
  const g = await gpu();
  const [N, D] = [3, 4099];
  const [x, dy, ls] = [g.tensor(withZeros(N * D), [N, D]), g.tensor(r.uniformArray(N * D), [N, D]), g.tensor(r.uniformArray(D))];
  const once = () => g.readMany([relu(g, x), reluBackward(g, x, dy), gaussianSample(g, x, ls, dy)]);
  const [a, b] = [await once(), await once()];
  a.forEach((v, i) => sameBits(v as Float32Array, b[i] as Float32Array, `output ${i}`));
});

test('NaN and Inf propagate', async () => {
  const g = await gpu();
  const x = g.tensor(Float32Array.of(NaN, Infinity, -Infinity, 2), [1, 4]);
  const [y, dx, a] = await g.readMany([
    relu(g, x),
    reluBackward(g, x, g.tensor(Float32Array.of(1, 1, 1, 1), [1, 4])),
    gaussianSample(g, x, g.tensor(Float32Array.of(0, 0, 0, 0)), g.tensor(Float32Array.of(1, 1, 1, NaN), [1, 4])),
  ]);
  assert.ok(Number.isNaN(y![0]) && y![1] === Infinity && y![2] === 0 && y![3] === 2, `relu ${y}`);
  assert.ok(Number.isNaN(dx![0]) && dx![1] === 1 && dx![2] === 0, `reluBackward ${dx}`);
  assert.ok(Number.isNaN(a![0]) && a![1] === Infinity && a![2] === -Infinity && Number.isNaN(a![3]), `sample ${a}`);
});

test('bad shapes, dtypes and aliasing are named', async () => {
  const g = await gpu();
  const a = g.zeros([2, 3]);
  const b = g.zeros([3, 2]);
  const u = g.zeros([2, 3], 'u32') as never;
  assert.throws(() => relu(g, u), /relu: x must be f32, got u32/);
  assert.throws(() => relu(g, a, a), /relu: out must not be one of the inputs/);
  assert.throws(() => relu(g, a, b), /relu: out must have shape \[2×3\], got \[3×2\]/);
  assert.throws(() => reluBackward(g, a, b), /reluBackward: dy must have shape \[2×3\]/);
  assert.throws(() => gaussianSample(g, g.zeros([6]), g.zeros([6]), g.zeros([6])), /gaussianSample: mu must be 2-D/);
  assert.throws(() => gaussianSample(g, a, g.zeros([2]), a), /gaussianSample: logStd must have shape \[3\], got \[2\]/);
  assert.throws(() => gaussianSample(g, a, g.zeros([3]), b), /gaussianSample: noise must have shape \[2×3\]/);
  a.release();
  assert.throws(() => relu(g, a), /relu: x was released/);
});

test.run();
