// The Llama-family kernels (RMSNorm, rotary embedding, SwiGLU, the GQA head layout, nn.Linear)
// against src/reference/llama.ts on awkward shapes; each reference backward against finite
// differences of its forward (f64).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { attentionForward } from '../../src/ops/attention.ts';
import { gqaPack, gqaUnpack } from '../../src/ops/gqa.ts';
import { linear, linearBackward } from '../../src/ops/linear.ts';
import { rmsnormBackward, rmsnormForward } from '../../src/ops/rmsnorm.ts';
import { ropeBackward, ropeForward } from '../../src/ops/rope.ts';
import { swiglu, swigluBackward } from '../../src/ops/swiglu.ts';
import * as ref from '../../src/reference/llama.ts';
import { linearBackward as refLinearBackward } from '../../src/reference/matmul.ts';
import { close, gpu, numericGrad, releaseGpu, rng } from '../helpers.ts';

test.after(releaseGpu);

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, x, i) => s + x * b[i]!, 0);

test('reference backwards match finite differences (f64)', async () => {
  const r = rng(1);
  const [N, C] = [3, 5];
  const x = Float64Array.from(r.uniformArray(N * C, -2, 2));
  const w = Float64Array.from(r.uniformArray(C, 0.5, 1.5));
  const dout = r.uniformArray(N * C);
  const norm = () => dot(ref.rmsnormForward(x, w, N, C, 1e-5).out, dout);
  const g = ref.rmsnormBackward(dout, x, w, N, C, 1e-5);
  close(g.dinp, await numericGrad(norm, x), 1e-6, 1e-8, 'rmsnorm dinp');
  close(g.dweight, await numericGrad(norm, w), 1e-6, 1e-8, 'rmsnorm dweight');
  const [gate, up] = [Float64Array.from(r.uniformArray(12, -6, 6)), Float64Array.from(r.uniformArray(12, -2, 2))];
  const d12 = r.uniformArray(12);
  const sw = () => dot(ref.swiglu(gate, up), d12);
  const sg = ref.swigluBackward(gate, up, d12);
  close(sg.dgate, await numericGrad(sw, gate), 1e-6, 1e-8, 'swiglu dgate');
  close(sg.dup, await numericGrad(sw, up), 1e-6, 1e-8, 'swiglu dup');
  // The rotation back is the transpose of the rotation: ⟨R x, y⟩ = ⟨x, Rᵀ y⟩.
  const inv = [1, 0.3, 0.01];
  const pos = [0, 5, 17];
  const [rx, ry] = [r.uniformArray(3 * 2 * 6), r.uniformArray(3 * 2 * 6)];
  assert.ok(Math.abs(dot(ref.rope(rx, pos, 2, 6, inv), ry) - dot(rx, ref.rope(ry, pos, 2, 6, inv, -1))) < 1e-12, 'rope backward is the transpose');
});

test('rmsnorm forward and backward (accumulating) match the reference', async () => {
  const g = await gpu();
  for (const [N, C] of [[1, 1], [3, 7], [65, 13], [130, 96]] as const) {
    const r = rng(N + C);
    const [x, w, d, prior] = [r.uniformArray(N * C, -2, 3), r.uniformArray(C, 0.5, 1.5), r.uniformArray(N * C), r.uniformArray(N * C)];
    const e = ref.rmsnormForward(x, w, N, C, 1e-6);
    const eg = ref.rmsnormBackward(d, x, w, N, C, 1e-6);
    const [tx, tw, td] = [g.tensor(x, [N, C]), g.tensor(w), g.tensor(d, [N, C])];
    const f = rmsnormForward(g, tx, tw, 1e-6);
    const dinp = g.tensor(prior, [N, C]);
    const bw = rmsnormBackward(g, td, tx, tw, f.rstd, { dinp });
    const [out, di, dw] = await g.readMany([f.out, bw.dinp, bw.dweight]);
    close(out!, e.out, 1e-5, 1e-5, `out ${N}×${C}`);
    close(di!, eg.dinp.map((v, i) => v + prior[i]!), 1e-4, 1e-5, `dinp ${N}×${C} (added to what was there)`);
    close(dw!, eg.dweight, 1e-4, 1e-4, `dweight ${N}×${C}`);
    for (const t of [tx, tw, td, f.out, f.rstd, dinp, bw.dweight]) t.release();
  }
});

test('rope forward matches the reference at large positions; backward undoes it', async () => {
  const g = await gpu();
  const [N, H, HD, P] = [5, 3, 8, 4000];
  const r = rng(4);
  const inv = Float64Array.from({ length: HD / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / HD));
  const cos = Float32Array.from({ length: P * (HD / 2) }, (_, k) => Math.cos(Math.floor(k / (HD / 2)) * inv[k % (HD / 2)]!));
  const sin = Float32Array.from({ length: P * (HD / 2) }, (_, k) => Math.sin(Math.floor(k / (HD / 2)) * inv[k % (HD / 2)]!));
  const tables = { cos: g.tensor(cos, [P, HD / 2]), sin: g.tensor(sin, [P, HD / 2]) };
  const posArr = Uint32Array.from([0, 1, 77, 2500, 3999]);
  const pos = g.tensor(posArr);
  const x = r.uniformArray(N * H * HD, -1, 1);
  const t = g.tensor(x, [N, H * HD]);
  ropeForward(g, t, pos, tables, HD);
  close(await g.read(t), ref.rope(x, posArr, H, HD, inv), 1e-5, 1e-5, 'rotated');
  ropeBackward(g, t, pos, tables, HD);
  close(await g.read(t), x, 1e-5, 1e-6, 'rotated back');
  for (const u of [tables.cos, tables.sin, pos, t]) u.release();
});

test('swiglu forward and backward match the reference, saturated gates included', async () => {
  const g = await gpu();
  const r = rng(5);
  const n = 1000;
  const gate = Float32Array.from(r.uniformArray(n, -8, 8), (v, i) => (i === 0 ? -200 : i === 1 ? 200 : v));
  const [up, d] = [r.uniformArray(n, -2, 2), r.uniformArray(n)];
  const [tg, tu, td] = [g.tensor(gate), g.tensor(up), g.tensor(d)];
  const out = swiglu(g, tg, tu);
  const { dgate, dup } = swigluBackward(g, tg, tu, td);
  const [o, dg, du] = await g.readMany([out, dgate, dup]);
  const e = ref.swigluBackward(gate, up, d);
  close(o!, ref.swiglu(gate, up), 1e-5, 1e-6, 'out');
  close(dg!, e.dgate, 1e-5, 1e-6, 'dgate');
  close(du!, e.dup, 1e-5, 1e-6, 'dup');
  for (const t of [tg, tu, td, out, dgate, dup]) t.release();
});

test('GQA: packed attention equals grouped attention; unpack is the adjoint of pack', async () => {
  const g = await gpu();
  const [B, T, NH, KVH, HD] = [2, 5, 6, 2, 3];
  const N = B * T;
  const r = rng(6);
  const [q, k, v] = [r.uniformArray(N * NH * HD, -1, 1), r.uniformArray(N * KVH * HD, -1, 1), r.uniformArray(N * KVH * HD, -1, 1)];
  const heads = { NH, KVH, HD };
  const [tq, tk, tv] = [g.tensor(q, [N, NH * HD]), g.tensor(k, [N, KVH * HD]), g.tensor(v, [N, KVH * HD])];
  const qkv = gqaPack(g, tq, tk, tv, heads);
  const att = attentionForward(g, qkv.reshape([B, T, 3 * NH * HD]), NH);
  close(await g.read(att.out), ref.gqaAttention(q, k, v, B, T, NH, KVH, HD), 1e-5, 1e-6, 'attention');
  const y = r.uniformArray(N * 3 * NH * HD);
  const ty = g.tensor(y, [N, 3 * NH * HD]);
  const { dq, dk, dv } = gqaUnpack(g, ty, heads);
  const [packed, a, b, c] = await g.readMany([qkv, dq, dk, dv]);
  const lhs = dot(packed!, y);
  const rhs = dot(q, a!) + dot(k, b!) + dot(v, c!);
  assert.ok(Math.abs(lhs - rhs) < 1e-4 * Math.abs(lhs) + 1e-4, `⟨pack(q,k,v), y⟩ = ${lhs}, ⟨(q,k,v), unpack(y)⟩ = ${rhs}`);
  assert.throws(() => gqaPack(g, tq, tk, tv, { NH, KVH: 4, HD }), /do not divide/);
  for (const t of [tq, tk, tv, qkv, att.out, att.att, ty, dq, dk, dv]) t.release();
});

test('linear (nn.Linear layout) forward and backward, with bias and dx accumulation', async () => {
  const g = await gpu();
  const [N, I, O] = [7, 5, 9];
  const r = rng(7);
  const [x, w, b, dy, prior] = [r.uniformArray(N * I), r.uniformArray(O * I), r.uniformArray(O), r.uniformArray(N * O), r.uniformArray(N * I)];
  // The reference's linearBackward takes W as (in, out).
  const wt = Float32Array.from({ length: I * O }, (_, k) => w[(k % O) * I + Math.floor(k / O)]!);
  const e = refLinearBackward(x, wt, dy, N, I, O);
  const [tx, tw, tb, tdy] = [g.tensor(x, [N, I]), g.tensor(w, [O, I]), g.tensor(b), g.tensor(dy, [N, O])];
  const y = linear(g, tx, tw, tb);
  const [dw, db, dx] = [g.zeros([O, I]), g.zeros([O]), g.tensor(prior, [N, I])];
  linearBackward(g, tx, tw, tdy, { dw, dbias: db, dx });
  const [gy, gdw, gdb, gdx] = await g.readMany([y, dw, db, dx]);
  const want = Float64Array.from({ length: N * O }, (_, k) => b[k % O]! + dot(x.subarray(Math.floor(k / O) * I, Math.floor(k / O) * I + I), w.subarray((k % O) * I, (k % O) * I + I)));
  close(gy!, want, 1e-5, 1e-6, 'y');
  close(gdw!, Float64Array.from({ length: O * I }, (_, k) => e.dw[(k % I) * O + Math.floor(k / I)]!), 1e-5, 1e-6, 'dw');
  close(gdb!, e.dbias, 1e-5, 1e-6, 'dbias');
  close(gdx!, e.dx.map((v, i) => v + prior[i]!), 1e-5, 1e-6, 'dx (added)');
  for (const t of [tx, tw, tb, tdy, y, dw, db, dx]) t.release();
});

test.run();
