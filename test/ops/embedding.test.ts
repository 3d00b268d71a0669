import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { embeddingBackward, embeddingForward, uploadTokens } from '../../src/ops/embedding.ts';
import * as ref from '../../src/reference/transformer.ts';
import { close, gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// [B, T, C, V, maxT]: T = 1, V prime, C not a multiple of 4 and past the workgroup (64), T < maxT.
const SHAPES: [number, number, number, number, number][] = [
  [1, 1, 1, 1, 1],
  [2, 1, 5, 7, 3],
  [3, 7, 13, 11, 8],
  [4, 16, 67, 5, 16],
  [2, 33, 6, 97, 40],
  [1, 70_000, 1, 3, 70_000], // positions past the 65535 workgroups of one grid dimension
];

function tokensFor(B: number, T: number, V: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: B * T }, () => r.int(V));
}

test('CPU backward matches finite differences of the CPU forward (f64)', async () => {
  const [B, T, C, V, maxT] = [2, 3, 4, 5, 4];
  const r = rng(1);
  const tokens = Uint32Array.from([1, 4, 1, 0, 1, 3]);
  const wte = Float64Array.from(r.uniformArray(V * C));
  const wpe = Float64Array.from(r.uniformArray(maxT * C));
  const dout = r.uniformArray(B * T * C);
  const loss = () => ref.embeddingForward(tokens, wte, wpe, B, T, C).reduce((s, o, i) => s + o * dout[i]!, 0);
  const g = ref.embeddingBackward(dout, tokens, B, T, C, V, maxT);
  close(g.dwte, await numericGrad(loss, wte), 1e-6, 1e-8, 'dwte');
  close(g.dwpe, await numericGrad(loss, wpe), 1e-6, 1e-8, 'dwpe');
});

test('forward and backward match the CPU reference on awkward shapes', async () => {
  const g = await gpu();
  for (const [B, T, C, V, maxT] of SHAPES) {
    const r = rng(B + T + C);
    const ids = tokensFor(B, T, V, C);
    const [wte, wpe, dout] = [r.uniformArray(V * C), r.uniformArray(maxT * C), r.uniformArray(B * T * C)];
    const tokens = uploadTokens(g, ids, [B, T], V);
    const [twte, twpe, tdout] = [g.tensor(wte, [V, C]), g.tensor(wpe, [maxT, C]), g.tensor(dout, [B, T, C])];
    const out = embeddingForward(g, tokens, twte, twpe);
    const [dwte, dwpe] = [g.zeros([V, C]), g.zeros([maxT, C])];
    embeddingBackward(g, tdout, tokens, dwte, dwpe);
    const [o, dw, dp] = await g.readMany([out, dwte, dwpe]);
    const e = ref.embeddingBackward(dout, ids, B, T, C, V, maxT);
    const what = `B=${B} T=${T} C=${C} V=${V}`;
    close(o!, ref.embeddingForward(ids, wte, wpe, B, T, C), 1e-6, 1e-7, `out ${what}`);
    close(dw!, e.dwte, 1e-5, 1e-6, `dwte ${what}`);
    close(dp!, e.dwpe, 1e-5, 1e-6, `dwpe ${what}`);
    for (const t of [tokens, twte, twpe, tdout, out, dwte, dwpe]) t.release();
  }
});

test('backward accumulates, with the same bits on every run', async () => {
  const g = await gpu();
  const [B, T, C, V] = [4, 20, 10, 3]; // few tokens: many repeats
  const r = rng(5);
  const tokens = uploadTokens(g, tokensFor(B, T, V, 6), [B, T], V);
  const dout = g.tensor(r.uniformArray(B * T * C), [B, T, C]);
  const runs: Float32Array[][] = [];
  for (let k = 0; k < 2; k++) {
    const [dwte, dwpe] = [g.zeros([V, C]), g.zeros([T, C])];
    embeddingBackward(g, dout, tokens, dwte, dwpe);
    runs.push((await g.readMany([dwte, dwpe])) as Float32Array[]);
    if (k === 1) {
      embeddingBackward(g, dout, tokens, dwte, dwpe);
      const twice = await g.readMany([dwte, dwpe]);
      twice.forEach((t, j) => close(t, runs[0]![j]!.map((v) => 2 * v), 1e-6, 1e-7, `accumulated ${j}`));
    }
  }
  sameBits(runs[0]![0]!, runs[1]![0]!, 'dwte');
  sameBits(runs[0]![1]!, runs[1]![1]!, 'dwpe');
});

test('out-of-range token ids: uploadTokens throws; the kernel writes NaN and skips dwte', async () => {
  const g = await gpu();
  assert.throws(() => uploadTokens(g, Uint32Array.from([0, 2, 5, 1]), [2, 2], 5), /token id 5 at position 2 is out of range for a vocabulary of 5/);
  const [V, C] = [3, 2];
  const tokens = g.tensor(Uint32Array.from([1, 3, 1]), [1, 3]);
  const wte = g.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [V, C]);
  const wpe = g.zeros([3, C]);
  const out = await g.read(embeddingForward(g, tokens, wte, wpe));
  assert.equal([...out.slice(0, 2)], [3, 4]);
  assert.ok(Number.isNaN(out[2]) && Number.isNaN(out[3]));
  assert.equal([...out.slice(4)], [3, 4]);
  const [dwte, dwpe] = [g.zeros([V, C]), g.zeros([3, C])];
  embeddingBackward(g, g.tensor(new Float32Array(6).fill(1), [1, 3, C]), tokens, dwte, dwpe);
  assert.equal([...(await g.read(dwte))], [0, 0, 2, 2, 0, 0]);
});

test('shape errors and aliasing are named', async () => {
  const g = await gpu();
  const tokens = g.zeros([2, 3], 'u32');
  const wte = g.zeros([5, 4]);
  const wpe = g.zeros([3, 4]);
  assert.throws(() => embeddingForward(g, g.zeros([2, 3]) as never, wte, wpe), /embeddingForward: tokens must be u32, got f32/);
  assert.throws(() => embeddingForward(g, tokens, wte, g.zeros([3, 5])), /embeddingForward: wpe must have shape \[\*×4\], got \[3×5\]/);
  assert.throws(() => embeddingForward(g, tokens, wte, g.zeros([2, 4])), /T = 3 is longer than wpe's 2 positions/);
  assert.throws(() => embeddingBackward(g, g.zeros([2, 3, 5]), tokens, wte, wpe), /embeddingBackward: dout must have shape \[2×3×4\]/);
  const dout = g.zeros([2, 3, 4]);
  assert.throws(() => embeddingBackward(g, dout, tokens, wte, wte), /out must not be one of the inputs/);
});

test.run();
