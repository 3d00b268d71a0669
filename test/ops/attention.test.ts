import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { attentionBackward, attentionForward } from '../../src/ops/attention.ts';
import * as ref from '../../src/reference/transformer.ts';
import { close, gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// [B, T, C, NH]: T = 1 (also with B > 1 and heads), one head, three heads, head size 1, C not a
// multiple of 4, B·NH·T past 64, T past the matmul's row blocks (16) and column span (4·8) and not
// a multiple of them, past 64 (two row-block rows of the workgroup grid's x), the bundled head size.
const SHAPES: [number, number, number, number][] = [
  [1, 1, 4, 1],
  [3, 1, 8, 2],
  [2, 5, 6, 3],
  [1, 7, 5, 1],
  [3, 9, 3, 3],
  [2, 17, 12, 2],
  [2, 37, 24, 3],
  [1, 70, 64, 2],
];

test('CPU backward matches finite differences of the CPU forward (f64)', async () => {
  const [B, T, C, NH] = [2, 4, 6, 3];
  const r = rng(1);
  const qkv = Float64Array.from(r.uniformArray(B * T * 3 * C, -1.5, 1.5));
  const dout = r.uniformArray(B * T * C);
  const loss = (x: ArrayLike<number>) => ref.attentionForward(x, B, T, C, NH).out.reduce((s, o, i) => s + o * dout[i]!, 0);
  const { att } = ref.attentionForward(qkv, B, T, C, NH);
  close(ref.attentionBackward(dout, qkv, att, B, T, C, NH), await numericGrad(loss, qkv), 1e-6, 1e-8, 'dqkv');
});

test('forward and backward match the CPU reference on awkward shapes', async () => {
  const g = await gpu();
  for (const [B, T, C, NH] of SHAPES) {
    const r = rng(B * 100 + T);
    const qkv = r.uniformArray(B * T * 3 * C, -2, 2);
    const dout = r.uniformArray(B * T * C);
    const e = ref.attentionForward(qkv, B, T, C, NH);
    const edqkv = ref.attentionBackward(dout, qkv, e.att, B, T, C, NH);
    const [tq, td] = [g.tensor(qkv, [B, T, 3 * C]), g.tensor(dout, [B, T, C])];
    const f = attentionForward(g, tq, NH);
    const dqkv = attentionBackward(g, td, tq, f.att, NH);
    const [out, att, dq] = await g.readMany([f.out, f.att, dqkv]);
    const what = `B=${B} T=${T} C=${C} NH=${NH}`;
    close(out!, e.out, 1e-5, 1e-5, `out ${what}`);
    close(att!, e.att, 1e-5, 1e-6, `att ${what}`);
    close(dq!, edqkv, 1e-4, 1e-5, `dqkv ${what}`);
    for (const t of [tq, td, f.out, f.att, dqkv]) t.release();
  }
});

test('backward accumulates into dqkv and is the same bits on rerun', async () => {
  const g = await gpu();
  const [B, T, C, NH] = [2, 6, 9, 3];
  const r = rng(7);
  const tq = g.tensor(r.uniformArray(B * T * 3 * C), [B, T, 3 * C]);
  const td = g.tensor(r.uniformArray(B * T * C), [B, T, C]);
  const { att } = attentionForward(g, tq, NH);
  const once = await g.read(attentionBackward(g, td, tq, att, NH));
  const acc = attentionBackward(g, td, tq, att, NH);
  sameBits(await g.read(acc), once, 'dqkv rerun');
  attentionBackward(g, td, tq, att, NH, acc);
  close(await g.read(acc), once.map((v) => 2 * v), 1e-6, 1e-7, 'accumulated dqkv');
});

test('large scores stay finite (the softmax subtracts the row max)', async () => {
  const g = await gpu();
  const [B, T, C, NH] = [1, 3, 2, 1];
  const qkv = new Float32Array(B * T * 3 * C).fill(30);
  const f = attentionForward(g, g.tensor(qkv, [B, T, 3 * C]), NH);
  const [out, att] = await g.readMany([f.out, f.att]);
  close(out!, new Float32Array(B * T * C).fill(30), 1e-6, 0, 'out');
  close(att!, [1, 0, 0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3], 1e-6, 1e-7, 'att');
});

test('a NaN at a later position reaches no earlier row of out or dq (causal: zeros are skipped, not multiplied)', async () => {
  const g = await gpu();
  const [B, T, C, NH] = [2, 40, 16, 2];
  const r = rng(9);
  const qkv = r.uniformArray(B * T * 3 * C);
  qkv.fill(NaN, (T - 1) * 3 * C, T * 3 * C); // batch 0's last position
  const tq = g.tensor(qkv, [B, T, 3 * C]);
  const f = attentionForward(g, tq, NH);
  const dqkv = attentionBackward(g, g.tensor(r.uniformArray(B * T * C), [B, T, C]), tq, f.att, NH);
  const [out, dq] = await g.readMany([f.out, dqkv]);
  for (let t = 0; t < T - 1; t++) {
    assert.ok(out!.subarray(t * C, (t + 1) * C).every(Number.isFinite), `out row ${t}`);
    assert.ok(dq!.subarray(t * 3 * C, t * 3 * C + C).every(Number.isFinite), `dq row ${t}`);
  }
  assert.ok(Number.isNaN(out![(T - 1) * C]), 'the NaN row itself');
});

test('shape errors and aliasing are named', async () => {
  const g = await gpu();
  const qkv = g.zeros([2, 3, 12]);
  assert.throws(() => attentionForward(g, g.zeros([2, 3, 10]), 1), /attentionForward: qkv must have shape \[B×T×3C\]/);
  assert.throws(() => attentionForward(g, qkv, 3), /C = 4 must split into NH = 3 heads/);
  const { att } = attentionForward(g, qkv, 2);
  assert.throws(() => attentionBackward(g, g.zeros([2, 3, 5]), qkv, att, 2), /attentionBackward: dout must have shape \[2×3×4\]/);
  assert.throws(() => attentionBackward(g, g.zeros([2, 3, 4]), qkv, att, 1), /attentionBackward: att must have shape \[2×1×3×3\]/);
  assert.throws(() => attentionBackward(g, g.zeros([2, 3, 4]), qkv, att, 2, qkv), /out must not be one of the inputs/);
});

test.run();
