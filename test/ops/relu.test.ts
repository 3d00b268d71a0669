import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { relu, reluBackward } from '../../src/ops/elementwise.ts';
import * as ref from '../../src/reference/ops.ts';
import { gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

const r = rng(17);
// Around the workgroup (256), primes, and a long row.
const SIZES = [1, 3, 13, 255, 256, 257, 4099];

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

test('relu kernels are deterministic', async () => {
  const g = await gpu();
  const [N, D] = [3, 4099];
  const [x, dy] = [g.tensor(withZeros(N * D), [N, D]), g.tensor(r.uniformArray(N * D), [N, D])];
  const once = () => g.readMany([relu(g, x), reluBackward(g, x, dy)]);
  const [a, b] = [await once(), await once()];
  a.forEach((v, i) => sameBits(v as Float32Array, b[i] as Float32Array, `output ${i}`));
});

test('NaN and Inf propagate', async () => {
  const g = await gpu();
  const x = g.tensor(Float32Array.of(NaN, Infinity, -Infinity, 2), [1, 4]);
  const [y, dx] = await g.readMany([relu(g, x), reluBackward(g, x, g.tensor(Float32Array.of(1, 1, 1, 1), [1, 4]))]);
  assert.ok(Number.isNaN(y![0]) && y![1] === Infinity && y![2] === 0 && y![3] === 2, `relu ${y}`);
  assert.ok(Number.isNaN(dx![0]) && dx![1] === 1 && dx![2] === 0, `reluBackward ${dx}`);
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
  a.release();
  assert.throws(() => relu(g, a), /relu: x was released/);
});

test.run();
