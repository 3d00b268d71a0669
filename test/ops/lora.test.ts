import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loraBackward, loraForward, loraMerge } from '../../src/ops/lora.ts';
import * as ref from '../../src/reference/lora.ts';
import { close, gpu, numericGrad, releaseGpu, rng } from '../helpers.ts';

test.after(releaseGpu);

const r = rng(31);
// Awkward sizes: primes, a row count past one workgroup, rank 1 and a rank that divides nothing.
const SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [5, 7, 3, 11],
  [67, 13, 5, 70],
  [9, 32, 8, 96],
];

function host(nIn: number, rank: number, nOut: number, scale = 1.75): ref.RefLora {
  return { a: r.uniformArray(nIn * rank), b: r.uniformArray(rank * nOut), nIn, r: rank, nOut, scale };
}

test('CPU backward matches finite differences of the CPU forward (f64)', async () => {
  const [n, nIn, rank, nOut] = [3, 4, 2, 5];
  const f = host(nIn, rank, nOut);
  const x = Float64Array.from(r.uniformArray(n * nIn));
  const dy = r.uniformArray(n * nOut);
  const loss = (xx: ArrayLike<number>, ff: ref.RefLora) => ref.loraTerm(xx, n, ff).reduce((s, v, i) => s + v * dy[i]!, 0);
  const g = ref.loraTermBackward(x, n, f, dy);
  close(g.dx, await numericGrad((v) => loss(v, f), x), 1e-6, 1e-8, 'dx');
  const a = Float64Array.from(f.a);
  close(g.da, await numericGrad((v) => loss(x, { ...f, a: v }), a), 1e-6, 1e-8, 'dA');
  const b = Float64Array.from(f.b);
  close(g.db, await numericGrad((v) => loss(x, { ...f, b: v }), b), 1e-6, 1e-8, 'dB');
});

test('forward adds s·(x·A)·B into y; backward adds dA, dB, dx; both match the reference', async () => {
  const g = await gpu();
  for (const [n, nIn, rank, nOut] of SHAPES) {
    const f = host(nIn, rank, nOut);
    const x = r.uniformArray(n * nIn);
    const y0 = r.uniformArray(n * nOut);
    const dy = r.uniformArray(n * nOut);
    const prev = { da: r.uniformArray(nIn * rank), db: r.uniformArray(rank * nOut), dx: r.uniformArray(n * nIn) };
    const t = { x: g.tensor(x, [n, nIn]), y: g.tensor(y0, [n, nOut]), dy: g.tensor(dy, [n, nOut]) };
    const factors = { a: g.tensor(Float32Array.from(f.a), [nIn, rank]), b: g.tensor(Float32Array.from(f.b), [rank, nOut]), scale: f.scale };
    const grads = { da: g.tensor(prev.da, [nIn, rank]), db: g.tensor(prev.db, [rank, nOut]), dx: g.tensor(prev.dx, [n, nIn]) };
    const h = loraForward(g, t.x, factors, t.y);
    loraBackward(g, t.x, h, factors, t.dy, grads);
    const [y, da, db, dx] = await g.readMany([t.y, grads.da, grads.db, grads.dx]);
    const term = ref.loraTerm(x, n, f);
    const e = ref.loraTermBackward(x, n, f, dy);
    const what = `n=${n} in=${nIn} r=${rank} out=${nOut}`;
    close(y!, y0.map((v, i) => v + term[i]!), 1e-5, 1e-5, `y ${what}`);
    close(da!, prev.da.map((v, i) => v + e.da[i]!), 1e-5, 1e-5, `dA ${what}`);
    close(db!, prev.db.map((v, i) => v + e.db[i]!), 1e-5, 1e-5, `dB ${what}`);
    close(dx!, prev.dx.map((v, i) => v + e.dx[i]!), 1e-5, 1e-5, `dx ${what}`);
    for (const x of [h, ...Object.values(t), factors.a, factors.b, ...Object.values(grads)]) x.release();
  }
});

test('merge matches the reference in both layouts ([in, out] and nn.Linear\'s [out, in]); unmerging gives the base back', async () => {
  const g = await gpu();
  for (const [, nIn, rank, nOut] of SHAPES) {
    for (const transposed of [false, true]) {
      const f = host(nIn, rank, nOut, 0.5);
      const w = r.uniformArray(nIn * nOut);
      const factors = { a: g.tensor(Float32Array.from(f.a), [nIn, rank]), b: g.tensor(Float32Array.from(f.b), [rank, nOut]), scale: f.scale };
      const tw = g.tensor(w, transposed ? [nOut, nIn] : [nIn, nOut]);
      const merged = loraMerge(g, tw, factors, { transposed });
      const back = loraMerge(g, merged, factors, { sign: -1, transposed });
      const [m, b] = await g.readMany([merged, back]);
      close(m!, ref.loraMerge(w, f, 1, transposed), 1e-6, 1e-6, `merged ${transposed ? '[out, in]' : '[in, out]'}`);
      close(b!, w, 1e-6, 1e-6, 'unmerged');
      for (const x of [tw, merged, back, factors.a, factors.b]) x.release();
    }
  }
});

test('stacked adapters: row block g goes through adapter g, forward, backward and merge, each as the reference of its own block', async () => {
  const g = await gpu();
  for (const [G, m, nIn, rank, nOut] of [[3, 5, 7, 3, 11], [2, 70, 13, 5, 9]] as const) {
    const fs = Array.from({ length: G }, () => host(nIn, rank, nOut));
    const x = r.uniformArray(G * m * nIn);
    const y0 = r.uniformArray(G * m * nOut);
    const dy = r.uniformArray(G * m * nOut);
    const cat = (xs: ArrayLike<number>[]) => Float32Array.from(xs.flatMap((a) => [...(a as Float32Array)]));
    const factors = { a: g.tensor(cat(fs.map((f) => f.a)), [G, nIn, rank]), b: g.tensor(cat(fs.map((f) => f.b)), [G, rank, nOut]), scale: fs[0]!.scale };
    const t = { x: g.tensor(x, [G * m, nIn]), y: g.tensor(y0, [G * m, nOut]), dy: g.tensor(dy, [G * m, nOut]) };
    const grads = { da: g.zeros([G, nIn, rank]), db: g.zeros([G, rank, nOut]), dx: g.zeros([G * m, nIn]) };
    const h = loraForward(g, t.x, factors, t.y);
    loraBackward(g, t.x, h, factors, t.dy, grads);
    const w = r.uniformArray(nIn * nOut);
    const tw = g.tensor(w, [nIn, nOut]);
    const merged = fs.map((_, k) => loraMerge(g, tw, factors, { adapter: k }));
    const [y, da, db, dx, ...ms] = await g.readMany([t.y, grads.da, grads.db, grads.dx, ...merged]);
    for (let k = 0; k < G; k++) {
      const part = (a: ArrayLike<number>, len: number) => (a as Float32Array).subarray(k * len, (k + 1) * len);
      const xk = part(x, m * nIn);
      const term = ref.loraTerm(xk, m, fs[k]!);
      const e = ref.loraTermBackward(xk, m, fs[k]!, part(dy, m * nOut));
      const what = `G=${G} adapter ${k}`;
      close(part(y!, m * nOut), part(y0, m * nOut).map((v, i) => v + term[i]!), 1e-5, 1e-5, `y ${what}`);
      close(part(da!, nIn * rank), e.da, 1e-5, 1e-5, `dA ${what}`);
      close(part(db!, rank * nOut), e.db, 1e-5, 1e-5, `dB ${what}`);
      close(part(dx!, m * nIn), e.dx, 1e-5, 1e-5, `dx ${what}`);
      close(ms[k]!, ref.loraMerge(w, fs[k]!), 1e-6, 1e-6, `merged ${what}`);
    }
    assert.throws(() => loraForward(g, g.zeros([G * m + 1, nIn]), factors, g.zeros([G * m + 1, nOut])), /loraForward: \d+ rows of x do not split into \d equal blocks, one per stacked adapter/);
    assert.throws(() => loraMerge(g, tw, factors, { adapter: G }), /loraMerge: adapter \d is not one of the \d stacked/);
    for (const v of [h, tw, ...merged, ...Object.values(t), factors.a, factors.b, ...Object.values(grads)]) v.release();
  }
});

test('shapes and aliasing are checked', async () => {
  const g = await gpu();
  const f = { a: g.zeros([4, 2]), b: g.zeros([2, 3]), scale: 1 };
  assert.throws(() => loraForward(g, g.zeros([5, 3]), f, g.zeros([5, 3])), /loraForward: x must have shape \[\*×4\], got \[5×3\]/);
  assert.throws(() => loraForward(g, g.zeros([5, 4]), { ...f, b: g.zeros([3, 3]) }, g.zeros([5, 3])), /loraForward: b must have shape \[2×\*\]/);
  assert.throws(() => loraMerge(g, g.zeros([4, 4]), f), /loraMerge: w must have shape \[4×3\]/);
  assert.throws(() => loraMerge(g, g.zeros([4, 3]), f, { transposed: true }), /loraMerge: w must have shape \[3×4\]/);
  const w = g.zeros([4, 3]);
  assert.throws(() => loraMerge(g, w, f, { out: w }), /out must not be one of the inputs/);
});

test.run();
