import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { layernormBackward, layernormForward } from '../../src/ops/layernorm.ts';
import * as ref from '../../src/reference/transformer.ts';
import { close, gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// [N rows, C]: one row, one column, C not a multiple of 4, N past the workgroup (64).
const SHAPES: [number, number][] = [
  [1, 1],
  [1, 7],
  [3, 5],
  [65, 13],
  [130, 96],
];

function data(N: number, C: number, seed: number) {
  const r = rng(seed);
  return { inp: r.uniformArray(N * C, -2, 3), w: r.uniformArray(C, 0.5, 1.5), b: r.uniformArray(C), dout: r.uniformArray(N * C) };
}

test('CPU backward matches finite differences of the CPU forward (f64)', async () => {
  const [N, C] = [3, 5];
  const { inp, w, b, dout } = data(N, C, 1);
  const x = [Float64Array.from(inp), Float64Array.from(w), Float64Array.from(b)];
  const loss = () => {
    const { out } = ref.layernormForward(x[0]!, x[1]!, x[2]!, N, C);
    return out.reduce((s, o, i) => s + o * dout[i]!, 0);
  };
  const { mean, rstd } = ref.layernormForward(x[0]!, x[1]!, x[2]!, N, C);
  const g = ref.layernormBackward(dout, x[0]!, x[1]!, mean, rstd, N, C);
  close(g.dinp, await numericGrad(loss, x[0]!), 1e-6, 1e-8, 'dinp');
  close(g.dweight, await numericGrad(loss, x[1]!), 1e-6, 1e-8, 'dweight');
  close(g.dbias, await numericGrad(loss, x[2]!), 1e-6, 1e-8, 'dbias');
});

test('forward and backward match the CPU reference on awkward shapes', async () => {
  const g = await gpu();
  for (const [N, C] of SHAPES) {
    const { inp, w, b, dout } = data(N, C, N + C);
    const e = ref.layernormForward(inp, w, b, N, C);
    const eg = ref.layernormBackward(dout, inp, w, e.mean, e.rstd, N, C);
    const [ti, tw, tb, td] = [g.tensor(inp, [N, C]), g.tensor(w), g.tensor(b), g.tensor(dout, [N, C])];
    const f = layernormForward(g, ti, tw, tb);
    const bw = layernormBackward(g, td, ti, tw, f.mean, f.rstd);
    assert.equal(f.mean.shape, [N]);
    const [out, mean, rstd, dinp, dw, db] = await g.readMany([f.out, f.mean, f.rstd, bw.dinp, bw.dweight, bw.dbias]);
    const what = `${N}×${C}`;
    close(out!, e.out, 1e-5, 1e-5, `out ${what}`);
    close(mean!, e.mean, 1e-5, 1e-6, `mean ${what}`);
    close(rstd!, e.rstd, 1e-5, 1e-6, `rstd ${what}`);
    close(dinp!, eg.dinp, 1e-4, 1e-5, `dinp ${what}`);
    close(dw!, eg.dweight, 1e-4, 1e-5 * Math.sqrt(N), `dweight ${what}`);
    close(db!, eg.dbias, 1e-5, 1e-5 * Math.sqrt(N), `dbias ${what}`);
    for (const t of [ti, tw, tb, td, f.out, f.mean, f.rstd, bw.dinp, bw.dweight, bw.dbias]) t.release();
  }
});

test('backward accumulates into given grads; dweight is the same bits on rerun', async () => {
  const g = await gpu();
  const [N, C] = [70, 9];
  const { inp, w, b, dout } = data(N, C, 9);
  const [ti, tw, tb, td] = [g.tensor(inp, [2, 35, C]), g.tensor(w), g.tensor(b), g.tensor(dout, [2, 35, C])];
  const f = layernormForward(g, ti, tw, tb);
  assert.equal(f.mean.shape, [2, 35]);
  const once = await g.readMany(Object.values(layernormBackward(g, td, ti, tw, f.mean, f.rstd)));
  const again = await g.readMany(Object.values(layernormBackward(g, td, ti, tw, f.mean, f.rstd)));
  sameBits(once[1] as Float32Array, again[1] as Float32Array, 'dweight');
  sameBits(once[2] as Float32Array, again[2] as Float32Array, 'dbias');
  const grads = { dinp: g.tensor(once[0] as Float32Array, [2, 35, C]), dweight: g.tensor(once[1] as Float32Array), dbias: g.tensor(once[2] as Float32Array) };
  layernormBackward(g, td, ti, tw, f.mean, f.rstd, grads);
  const twice = await g.readMany([grads.dinp, grads.dweight, grads.dbias]);
  twice.forEach((t, k) => close(t, (once[k] as Float32Array).map((v) => 2 * v), 1e-6, 1e-6, `accumulated grad ${k}`));
});

test('NaN in a row stays in that row', async () => {
  const g = await gpu();
  const inp = new Float32Array([1, NaN, 3, 1, 2, 3]);
  const f = layernormForward(g, g.tensor(inp, [2, 3]), g.tensor(new Float32Array([1, 1, 1])), g.zeros([3]));
  const out = await g.read(f.out);
  assert.ok(out.slice(0, 3).every(Number.isNaN));
  assert.ok(out.slice(3).every(Number.isFinite));
});

test('shape errors and aliasing are named', async () => {
  const g = await gpu();
  const x = g.zeros([4, 6]);
  const w = g.zeros([6]);
  assert.throws(() => layernormForward(g, x, g.zeros([5]), w), /layernormForward: weight must have shape \[6\], got \[5\]/);
  assert.throws(() => layernormForward(g, x, w, g.zeros([6], 'u32') as never), /layernormForward: bias must be f32/);
  const f = layernormForward(g, x, w, w);
  assert.throws(() => layernormBackward(g, g.zeros([4, 5]), x, w, f.mean, f.rstd), /layernormBackward: dout must have shape \[4×6\]/);
  assert.throws(() => layernormBackward(g, x, x, w, f.rstd, f.rstd, { dinp: x }), /out must not be one of the inputs/);
  assert.throws(() => layernormBackward(g, x, x, w, f.mean, f.rstd, { dweight: w }), /out must not be one of the inputs/);
});

test.run();
