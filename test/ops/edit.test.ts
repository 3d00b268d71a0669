import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { applyEdits, combineEdits, editBackward, maskBlock, maskSize, type DenseEdit, type Edit, type MaskBlock } from '../../src/ops/edit.ts';
import * as ref from '../../src/reference/edit.ts';
import { f32ToF16 } from '../../src/io/safetensors.ts';
import { close, gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

const r = rng(21);

// A 7×67 matrix (primes; 67 columns is past one 64-wide workgroup): a row/column block, a flat
// range, and a single element; the packed delta starts at offset 3 of a longer action vector.
const M = 7;
const N = 67;
const MASK: MaskBlock[] = [maskBlock([M, N], [1, 4], [2, 65]), { start: 5 * N + 10, run: 70, stride: 70, runs: 1 }, maskBlock([M, N], [6, 7], [66, 67])];
const OFFSET = 3;

interface Case {
  edit: Edit;
  host: ref.RefEdit;
}

function dense(g: Gpu, alpha: number, mask = MASK, offset = OFFSET): Case {
  const delta = r.uniformArray(offset + maskSize(mask) + 2);
  const t = g.tensor(delta);
  return { edit: { kind: 'dense', mask, delta: t, offset, alpha }, host: { kind: 'dense', mask, delta, offset, alpha } };
}

function lowRank(g: Gpu, rows: number, cols: number, rank: number, alpha: number, offset = 2): Case {
  const factors = r.uniformArray(offset + rank * (rows + cols) + 1);
  const t = g.tensor(factors);
  return { edit: { kind: 'lowrank', factors: t, offset, rows, cols, rank, alpha }, host: { kind: 'lowrank', factors, offset, rows, cols, rank, alpha } };
}

const LOWRANK_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 5, 3],
  [13, 67, 2],
  [M, N, 4],
];

test('masks: maskBlock covers row/column ranges; maskIndices lists them in packed order', () => {
  assert.equal(maskBlock([3, 4], [1, 3], [1, 3]), { start: 5, run: 2, stride: 4, runs: 2 });
  assert.equal(ref.maskIndices([maskBlock([3, 4], [1, 3], [1, 3])]), [5, 6, 9, 10]);
  assert.equal(maskBlock([5]), { start: 0, run: 5, stride: 5, runs: 1 });
  assert.is(maskSize(MASK), 3 * 63 + 70 + 1);
});

test('dense edits: apply and compose match the reference; the base keeps its bits', async () => {
  const g = await gpu();
  const base = r.uniformArray(M * N);
  const tb = g.tensor(base, [M, N]);
  const e1 = dense(g, 0.5);
  const e2 = dense(g, -2, [maskBlock([M, N], [0, 7], [30, 31])], 0);
  const one = applyEdits(g, tb, [e1.edit]);
  const both = applyEdits(g, tb, [e1.edit, e2.edit]);
  const [b, o1, o2] = await g.readMany([tb, one, both]);
  sameBits(b as Float32Array, base, 'base after edits');
  close(o1!, ref.applyEdits(base, [e1.host]), 1e-6, 1e-7, 'apply');
  close(o2!, ref.applyEdits(base, [e1.host, e2.host]), 1e-6, 1e-7, 'compose');
  // Outside the mask the copy is the base, bit for bit.
  const masked = new Set(ref.maskIndices(MASK));
  for (let i = 0; i < base.length; i++) if (!masked.has(i)) assert.is(o1![i], base[i]);
});

test('a 1-element tensor and a given out', async () => {
  const g = await gpu();
  const tb = g.tensor(new Float32Array([1.5]));
  const out = g.tensor(new Float32Array([99]));
  const e = dense(g, 2, [maskBlock([1])], 0);
  applyEdits(g, tb, [e.edit], out);
  close(await g.read(out), ref.applyEdits([1.5], [e.host]), 1e-6, 1e-7);
});

test('low-rank edits match the reference', async () => {
  const g = await gpu();
  for (const [m, n, k] of LOWRANK_SHAPES) {
    const base = r.uniformArray(m * n);
    const tb = g.tensor(base, [m, n]);
    const e = lowRank(g, m, n, k, 0.7);
    const out = applyEdits(g, tb, [e.edit]);
    const [b, o] = await g.readMany([tb, out]);
    sameBits(b as Float32Array, base, `base ${m}×${n}`);
    close(o!, ref.applyEdits(base, [e.host]), 1e-6, 1e-6, `low-rank ${m}×${n} r=${k}`);
  }
});

/** FD of ⟨dOut, W'(action)⟩ in f64 on the CPU, vs the reference backward; then the GPU vs the reference. */
async function checkBackward(g: Gpu, c: Case, rows: number, cols: number): Promise<void> {
  const dOut = r.uniformArray(rows * cols);
  const base = r.uniformArray(rows * cols);
  const action = Float64Array.from(c.host.kind === 'dense' ? c.host.delta : c.host.factors);
  const withAction = (x: Float64Array | Float32Array): ref.RefEdit => (c.host.kind === 'dense' ? { ...c.host, delta: x } : { ...c.host, factors: x });
  const objective = (x: Float64Array | Float32Array) => ref.applyEdits(base, [withAction(x)]).reduce((s, w, i) => s + w * dOut[i]!, 0);
  const expected = ref.editBackward(dOut, c.host);
  close(expected, await numericGrad(objective, action, 1e-5), 1e-7, 1e-9, `${c.host.kind} reference backward vs finite differences`);
  const td = g.tensor(dOut, [rows, cols]);
  const got = await g.read(editBackward(g, td, c.edit));
  close(got, expected, 1e-5, 1e-6, `${c.host.kind} GPU backward ${rows}×${cols}`);
}

test('edit gradients: reference vs finite differences, GPU vs reference', async () => {
  const g = await gpu();
  await checkBackward(g, dense(g, 0.3), M, N);
  for (const [m, n, k] of LOWRANK_SHAPES) await checkBackward(g, lowRank(g, m, n, k, 0.6), m, n);
});

test('editBackward adds into its own part of a shared dAction only', async () => {
  const g = await gpu();
  const c = dense(g, 1);
  const dAction = g.tensor(new Float32Array(c.host.kind === 'dense' ? c.host.delta.length : 0).fill(7));
  editBackward(g, g.tensor(new Float32Array(M * N).fill(0.5), [M, N]), c.edit, dAction);
  const d = await g.read(dAction);
  assert.equal([d[0], d[OFFSET], d[OFFSET + maskSize(MASK) - 1], d[OFFSET + maskSize(MASK)]], [7, 7.5, 7.5, 7]);
  // Low-rank: dU and dV add in too; around them the factors' gradient is untouched.
  const [m, n, k] = [7, 5, 3];
  const lr = lowRank(g, m, n, k, 0.6);
  const dOut = g.tensor(r.uniformArray(m * n), [m, n]);
  const fresh = await g.read(editBackward(g, dOut, lr.edit));
  const acc = g.tensor(new Float32Array(fresh.length).fill(1));
  const got = await g.read(editBackward(g, dOut, lr.edit, acc));
  const inside = (i: number) => i >= 2 && i < 2 + k * (m + n);
  close(got, Array.from(fresh, (v, i) => (inside(i) ? v + 1 : 1)), 1e-6, 1e-6, 'low-rank dAction');
});

test('edits and their gradients are deterministic', async () => {
  const g = await gpu();
  const c = lowRank(g, M, N, 4, 0.5);
  const dOut = g.tensor(r.uniformArray(M * N), [M, N]);
  const runs = async () => g.readMany([editBackward(g, dOut, c.edit), applyEdits(g, dOut, [c.edit])]);
  const [a, b] = [await runs(), await runs()];
  a.forEach((x, i) => sameBits(x as Float32Array, b[i] as Float32Array));
});

test('NaN in the delta reaches only its own element', async () => {
  const g = await gpu();
  const mask = [maskBlock([4], undefined, [1, 3])];
  const out = applyEdits(g, g.tensor(new Float32Array([1, 2, 3, 4])), [{ kind: 'dense', mask, delta: g.tensor(new Float32Array([NaN, 1])), alpha: 1 }]);
  const v = await g.read(out);
  assert.ok(Number.isNaN(v[1]));
  assert.equal([v[0], v[2], v[3]], [1, 4, 4]);
});

test('combineEdits: G copies of R directions in one dispatch carry applyEdits\' bits (f32 and f16 bases)', async () => {
  const g = await gpu();
  const [G, R] = [3, 4];
  // f16: an even element count (a buffer holds whole 4-byte words).
  for (const [dtype, rows, block] of [['f32', M, maskBlock([M, N], [1, 6], [3, 60])], ['f16', M + 1, maskBlock([M + 1, N])], ['f32', M, { start: 5, run: 9, stride: 0, runs: 1 }]] as const) {
    const size = rows * N;
    const baseData = r.uniformArray(size);
    const base = dtype === 'f16' ? g.tensor(f32ToF16(baseData), [rows, N], 'f16') : g.tensor(baseData, [rows, N]);
    const count = block.run * block.runs;
    const dirs = g.tensor(r.uniformArray(R * count), [R, count]);
    // Copy 1 is the zero edit: the base's bits.
    const coefData = Float32Array.from({ length: G * R }, (_, i) => (Math.floor(i / R) === 1 ? 0 : r.normal()));
    const coefs = g.tensor(coefData, [G, R]);
    const out = g.zeros([G + 1, rows, N]);
    combineEdits(g, base, block, dirs, coefs, out, 1);
    const got = (await g.read(out)) as Float32Array;
    sameBits(got.subarray(0, size), new Float32Array(size), 'copies outside first.. are left alone');
    for (let c = 0; c < G; c++) {
      const edits: DenseEdit[] = Array.from({ length: R }, (_, k) => ({ kind: 'dense', mask: [block], delta: dirs, offset: k * count, alpha: coefData[c * R + k]! }));
      const want = applyEdits(g, base, edits);
      sameBits(got.subarray((c + 1) * size, (c + 2) * size), (await g.read(want)) as Float32Array, `${dtype} copy ${c}`);
      want.release();
    }
    assert.throws(() => combineEdits(g, base, block, dirs, coefs, out, 2), /copies 2..4 are outside out/);
    const wide = g.zeros([G, R + 1]);
    assert.throws(() => combineEdits(g, base, block, dirs, wide), /combineEdits: dirs/);
    for (const t of [base, dirs, coefs, out, wide]) t.release();
  }
});

test('bad input gives named errors', async () => {
  const g = await gpu();
  const base = g.zeros([M, N]);
  const d = dense(g, 1).edit as DenseEdit;
  const lr = lowRank(g, M, N, 2, 1).edit;
  const withMask = (mask: MaskBlock[]): Edit => ({ kind: 'dense', mask, delta: g.zeros([100]), alpha: 1 });
  assert.throws(() => applyEdits(g, base, [d], base), /applyEdits: out must not be one of the inputs/);
  assert.throws(() => applyEdits(g, base, [d], g.zeros([N, M])), /applyEdits: out must have shape \[7×67\], got \[67×7\]/);
  assert.throws(() => applyEdits(g, g.zeros([M, N + 1]), [lr]), /applyEdits: base must have shape \[7×67\], got \[7×68\]/);
  assert.throws(() => applyEdits(g, base, [withMask([{ start: M * N - 2, run: 3, stride: 3, runs: 1 }])]), (e: Error) => e.name === 'MaskError' && /reaches index 469, past the end of a tensor of 469/.test(e.message));
  assert.throws(() => applyEdits(g, base, [withMask([maskBlock([M, N], [0, 1]), maskBlock([M, N], undefined, [3, 4])])]), /applyEdits: mask blocks overlap at index 3/);
  assert.throws(() => applyEdits(g, base, [withMask([{ start: 0, run: 4, stride: 2, runs: 2 }])]), /stride 2 < run 4/);
  assert.throws(() => applyEdits(g, base, [withMask([maskBlock([M, N])])]), /the edit reads delta\[0, 469\), outside/);
  assert.throws(() => maskBlock([M, N], [0, 8]), /maskBlock: rows \[0, 8\) × cols \[0, 67\) is outside a 7×67 matrix/);
  assert.throws(() => editBackward(g, g.zeros([M, N]), d, g.zeros([5])), /editBackward: dAction must have shape/);
  assert.throws(() => editBackward(g, g.zeros([M, N]), { ...d, delta: g.zeros([500], 'u32') as never }), /editBackward: delta must be f32/);
});

test.run();
