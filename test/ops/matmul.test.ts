import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MATMUL_VARIANTS, autotuneMatmul, candidates, chooseMatmul, defaultChoice, formatChoice, matmul, matmulBackward, matmulStrided, resetMatmulTuning, subgroupsUsable, type Gemm } from '../../src/ops/matmul.ts';
import { gemm, gemmStrided, linearBackward, type GemmOptions } from '../../src/reference/matmul.ts';
import { TuningCache, tuningFromEnv } from '../../src/io/tuning-cache.ts';
import { fastest } from '../../src/gpu/autotune.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { close, gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// Not multiples of 4, of the row blocks (4, 8, 16) nor of the tiles (32, 64), and degenerate ones.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 5],
  [3, 5, 7],
  [9, 65, 12],
  [17, 31, 33],
  [70, 100, 67],
  [130, 3, 257],
  [5, 0, 3],
];

async function variants(g: Gpu): Promise<string[]> {
  const all = Object.keys(MATMUL_VARIANTS).filter((v) => !MATMUL_VARIANTS[v as keyof typeof MATMUL_VARIANTS].subgroups || subgroupsUsable(g));
  return [...all, 'regs-rb8/split3', 'tiled-8x4/split5', ...(subgroupsUsable(g) ? ['subgroup-rb16/split4', 'subgroup-rb32/split4'] : [])];
}

/** Runs matmul with `opts` and compares with the reference on random data. */
async function check(g: Gpu, M: number, K: number, N: number, o: GemmOptions & { variant?: string; batched?: 'both' | 'a' | 'b' }, seed = 1) {
  const r = rng(seed);
  const batch = o.batch ?? 1;
  const aB = o.batched === 'both' || o.batched === 'a';
  const bB = o.batched === 'both' || o.batched === 'b';
  const a = r.uniformArray((aB ? batch : 1) * M * K);
  const b = r.uniformArray((bB ? batch : 1) * K * N);
  const bias = o.bias ? r.uniformArray(N) : undefined;
  const old = o.accumulate ? r.uniformArray((aB || bB ? batch : 1) * M * N) : undefined;
  const ta = g.tensor(a, [...(aB ? [batch] : []), ...(o.transA ? [K, M] : [M, K])]);
  const tb = g.tensor(b, [...(bB ? [batch] : []), ...(o.transB ? [N, K] : [K, N])]);
  const tbias = bias && g.tensor(bias, [N]);
  const outShape = aB || bB ? [batch, M, N] : [M, N];
  const tout = old && g.tensor(old, outShape);
  const c = matmul(g, ta, tb, { transA: o.transA, transB: o.transB, alpha: o.alpha, bias: tbias, gelu: o.gelu, accumulate: !!old, out: tout, variant: o.variant });
  assert.equal(c.shape, outShape);
  const want = gemm(a, b, M, K, N, { ...o, bias, accumulate: old, aBatched: aB, bBatched: bB, batch: aB || bB ? batch : 1 });
  const got = await g.read(c);
  for (const t of [ta, tb, tbias, c]) t?.release();
  close(got, want, 1e-5, 2e-6 * Math.sqrt(K + 1) * 4, `${o.variant ?? 'default'} ${M}×${K}×${N} ${JSON.stringify({ ...o, variant: undefined })}`);
  return got;
}

test('every variant matches the CPU reference on awkward shapes', async () => {
  const g = await gpu();
  for (const variant of await variants(g)) {
    for (const [M, K, N] of SHAPES) await check(g, M, K, N, { variant });
  }
});

test('transposed forms (A·Bᵀ, Aᵀ·B, Aᵀ·Bᵀ), every variant', async () => {
  const g = await gpu();
  for (const variant of await variants(g)) {
    for (const [M, K, N] of [[7, 13, 10], [33, 9, 70]] as const) {
      await check(g, M, K, N, { variant, transB: true });
      await check(g, M, K, N, { variant, transA: true });
      await check(g, M, K, N, { variant, transA: true, transB: true });
    }
  }
});

test('fused epilogues: alpha, bias, GELU, accumulate, every variant', async () => {
  const g = await gpu();
  for (const variant of await variants(g)) {
    const [M, K, N] = [19, 23, 37];
    await check(g, M, K, N, { variant, alpha: -0.5 });
    await check(g, M, K, N, { variant, bias: new Float32Array() });
    await check(g, M, K, N, { variant, bias: new Float32Array(), gelu: true, alpha: 2 });
    await check(g, M, K, N, { variant, gelu: true });
    await check(g, M, K, N, { variant, accumulate: new Float32Array(), alpha: 0.25 });
  }
});

test('batched: both operands, a shared B (weights), a shared A', async () => {
  const g = await gpu();
  for (const variant of await variants(g)) {
    await check(g, 9, 17, 6, { variant, batch: 3, batched: 'both' });
    await check(g, 9, 17, 6, { variant, batch: 3, batched: 'a', bias: new Float32Array() });
    await check(g, 9, 17, 6, { variant, batch: 2, batched: 'b', transB: true, accumulate: new Float32Array() });
  }
  await check(g, 5, 8, 11, { batch: 4, batched: 'both', transA: true });
});

test('strided views: offsets, a (batch × inner) batch, strided C, triangular A skipped; every variant', async () => {
  const g = await gpu();
  // batch 2 × inner 3 matrices inside larger buffers, A (M = K = 19) zero above (or below) its
  // diagonal as causal attention's probabilities are; C's rows are 13 apart (N = 10), the gaps kept.
  const [batch, inner, M, K, N] = [2, 3, 19, 19, 10];
  const r = rng(11);
  const a = r.uniformArray(5 + batch * inner * M * K);
  const b = r.uniformArray(3 + K * 60);
  const c = r.uniformArray(7 + batch * inner * M * 13);
  const base = { M, N, K, batch, inner, oB: 3, sBb: 30, sBh: 10, sBk: 60, sBj: 1, oC: 7, sCb: inner * M * 13, sCh: M * 13, sCi: 13 };
  const cases: [string, Gemm, 'lower' | 'upper', boolean][] = [
    ['lower', { ...base, oA: 5, sAb: inner * M * K, sAh: M * K, sAi: K, sAk: 1 }, 'lower', false],
    ['upper (A read transposed), accumulate', { ...base, oA: 5, sAb: inner * M * K, sAh: M * K, sAi: 1, sAk: K }, 'upper', true],
  ];
  for (const variant of await variants(g)) {
    for (const [what, gm, triangle, accumulate] of cases) {
      const tri = Float32Array.from(a, (v, e) => {
        const x = (e - 5) % (M * K);
        const [row, col] = [Math.floor(x / K), x % K]; // storage row and column
        const [i, k] = gm.sAi === K ? [row, col] : [col, row];
        return e >= 5 && (triangle === 'lower' ? k > i : k < i) ? 0 : v;
      });
      const [ta, tb, tc] = [g.tensor(tri, [tri.length]), g.tensor(b, [b.length]), g.tensor(c, [c.length])];
      matmulStrided(g, 'strided', ta, tb, tc, gm, { alpha: 0.5, accumulate, triangle, variant });
      close(await g.read(tc), gemmStrided(tri, b, c, gm, 0.5, accumulate), 1e-5, 1e-5, `${variant} ${what}`);
      for (const t of [ta, tb, tc]) t.release();
    }
  }
  // Only C's lower triangle wanted (j ≤ i), over several column blocks: the rest is left unwritten.
  const L = { M: 70, N: 70, K: 7, batch: 1, inner: 1, oA: 0, oB: 0, oC: 0, sAb: 0, sAh: 0, sAi: 7, sAk: 1, sBb: 0, sBh: 0, sBk: 70, sBj: 1, sCb: 0, sCh: 0, sCi: 70 };
  const [la, lb] = [r.uniformArray(70 * 7), r.uniformArray(7 * 70)];
  const lower = (x: ArrayLike<number>) => Array.from(x).filter((_, e) => e % 70 <= Math.floor(e / 70));
  for (const variant of await variants(g)) {
    const [ta, tb, tc] = [g.tensor(la, [70, 7]), g.tensor(lb, [7, 70]), g.empty([70, 70])];
    matmulStrided(g, 'strided', ta, tb, tc, L, { lowerC: true, variant });
    close(lower(await g.read(tc)), lower(gemmStrided(la, lb, new Float32Array(70 * 70), L)), 1e-5, 1e-5, `${variant} lower C`);
    for (const t of [ta, tb, tc]) t.release();
  }
  const [small, big] = [g.zeros([4]), g.zeros([10])];
  assert.throws(() => matmulStrided(g, 'strided', small, big, g.zeros([10]), { ...cases[0]![1], M: 1, N: 1, K: 1, batch: 1, inner: 1 }), /strided: the strides reach element 5 of a/);
});

test('split-K is deterministic: same bits on rerun', async () => {
  const g = await gpu();
  const first = await check(g, 6, 1500, 10, { variant: 'regs-rb8/split7', bias: new Float32Array() }, 3);
  const again = await check(g, 6, 1500, 10, { variant: 'regs-rb8/split7', bias: new Float32Array() }, 3);
  sameBits(first, again);
  // The default choice for this shape class splits K too.
  const d1 = await check(g, 8, 2048, 8, {}, 4);
  sameBits(d1, await check(g, 8, 2048, 8, {}, 4));
});

test('K = 0 gives the epilogue of zero; empty outputs are fine', async () => {
  const g = await gpu();
  const out = g.tensor(new Float32Array(6).fill(9), [2, 3]);
  matmul(g, g.zeros([2, 0]), g.zeros([0, 3]), { out });
  assert.equal(await g.read(out), new Float32Array(6));
  const bias = g.tensor(new Float32Array([1, 2, 3]), [3]);
  matmul(g, g.zeros([2, 0]), g.zeros([0, 3]), { out, bias, accumulate: true });
  assert.equal(await g.read(out), new Float32Array([1, 2, 3, 1, 2, 3]));
  assert.equal(matmul(g, g.zeros([0, 4]), g.zeros([4, 3])).shape, [0, 3]);
});

test('NaN and Inf propagate', async () => {
  const g = await gpu();
  for (const variant of ['regs-rb8', 'tiled-8x4', 'regs-rb4/split2']) {
    const a = g.tensor(new Float32Array([NaN, 1, 1, 1, Infinity, 1]), [3, 2]);
    const c = await g.read(matmul(g, a, g.tensor(new Float32Array([1, 1, 1, 1]), [2, 2]), { variant }));
    assert.ok(Number.isNaN(c[0]) && Number.isNaN(c[1]), variant);
    assert.is(c[2], 2);
    assert.is(c[4], Infinity);
  }
});

test('linear backward: CPU reference vs finite differences (f64)', async () => {
  const [M, K, N] = [3, 4, 5];
  const r = rng(7);
  const x = Float64Array.from(r.uniformArray(M * K));
  const w = Float64Array.from(r.uniformArray(K * N));
  const bias = Float64Array.from(r.uniformArray(N));
  const dy = Float64Array.from(r.uniformArray(M * N));
  const loss = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let y = bb[j]!;
      for (let k = 0; k < K; k++) y += xx[i * K + k]! * ww[k * N + j]!;
      s += y * dy[i * N + j]!;
    }
    return s;
  };
  const ref = linearBackward(x, w, dy, M, K, N);
  close(ref.dx, await numericGrad((v) => loss(v, w, bias), x), 1e-7, 1e-7, 'dx');
  close(ref.dw, await numericGrad((v) => loss(x, v, bias), w), 1e-7, 1e-7, 'dw');
  close(ref.dbias, await numericGrad((v) => loss(x, w, v), bias), 1e-7, 1e-7, 'dbias');
});

test('linear backward on the GPU matches the reference (3-D x, accumulate, every variant)', async () => {
  const g = await gpu();
  const [B, T, K, N] = [2, 7, 11, 13];
  const r = rng(8);
  const x = r.uniformArray(B * T * K);
  const w = r.uniformArray(K * N);
  const dy = r.uniformArray(B * T * N);
  const ref = linearBackward(x, w, dy, B * T, K, N);
  const prev = r.uniformArray(K * N);
  for (const variant of await variants(g)) {
    const [tx, tw, tdy] = [g.tensor(x, [B, T, K]), g.tensor(w, [K, N]), g.tensor(dy, [B, T, N])];
    const dw = g.tensor(prev, [K, N]);
    const dbias = g.tensor(new Float32Array(N).fill(1), [N]);
    const tdx = matmulBackward(g, tx, tw, tdy, { dw, dbias, variant });
    assert.equal(tdx.shape, [B, T, K]);
    const [dx, dwv, db] = await g.readMany([tdx, dw, dbias]);
    close(dx!, ref.dx, 1e-5, 1e-5, `${variant} dx`);
    close(dwv!, ref.dw.map((v, i) => v + prev[i]!), 1e-5, 1e-5, `${variant} dw`);
    close(db!, ref.dbias.map((v) => v + 1), 1e-5, 1e-5, `${variant} dbias`);
    for (const t of [tx, tw, tdy, dw, dbias, tdx]) t.release();
  }
});

test('bad shapes, dtypes, aliasing and variants are named', async () => {
  const g = await gpu();
  const a = g.zeros([2, 3]);
  assert.throws(() => matmul(g, a, g.zeros([4, 2])), /matmul: b must have shape \[3×2\]|matmul: b must have shape \[3×\*\]/);
  assert.throws(() => matmul(g, g.zeros([6]), a), /matmul: a must be 2-D or 3-D/);
  assert.throws(() => matmul(g, a, g.zeros([3, 2]), { out: g.zeros([2, 3]) }), /matmul: out must have shape \[2×2\]/);
  assert.throws(() => matmul(g, a, g.zeros([3, 2], 'u32') as never), /matmul: b must be f32/);
  assert.throws(() => matmul(g, a, g.zeros([4, 2]), { transB: true }), /matmul: b must have shape \[4×3\]/);
  assert.throws(() => matmul(g, g.zeros([2, 2, 3]), g.zeros([3, 3, 4])), /matmul: b must have shape \[2×3×4\]/);
  assert.throws(() => matmul(g, a, g.zeros([3, 4]), { bias: g.zeros([3]) }), /matmul: bias must have shape \[4\]/);
  assert.throws(() => matmul(g, a, g.zeros([3, 4]), { accumulate: true }), /accumulate needs/);
  const sq = g.zeros([3, 3]);
  assert.throws(() => matmul(g, sq, sq, { out: sq }), /matmul: out must not be one of the inputs/);
  assert.throws(() => matmul(g, a, g.zeros([3, 4]), { variant: 'fastest' }), /matmul: unknown variant 'fastest'/);
  assert.throws(() => matmulBackward(g, g.zeros([2, 3]), g.zeros([3, 4]), g.zeros([2, 5]), { dw: g.zeros([3, 4]) }), /matmulBackward: dy must have shape \[2×4\]/);
});

test('an adapter without usable subgroups (SwiftShader: 4 lanes) is never offered a subgroup variant', async () => {
  const g = await gpu();
  for (const [features, minSize] of [[new Set<string>(), 32], [new Set(['subgroups']), 4]] as const) {
    const fake = { summary: { ...g.summary, description: 'swiftshader' }, features, adapter: { info: { subgroupMinSize: minSize } } } as unknown as Gpu;
    assert.not.ok(subgroupsUsable(fake));
    for (const cls of ['small-m', 'long-k', 'general'] as const) {
      const offered = [...candidates(fake, cls), formatChoice(defaultChoice(fake, cls))];
      assert.equal(offered.filter((c) => c.startsWith('subgroup')), [], `${cls}: ${offered.join(', ')}`);
    }
  }
});

test('autotune: cache round-trip, corrupt cache ignored with a warning, SEAL_AUTOTUNE=0 (fake timings)', async () => {
  const g = await gpu();
  const dir = mkdtempSync(join(tmpdir(), 'seal-autotune-'));
  const env = { SEAL_CACHE_DIR: dir };
  const timed: string[] = [];
  // Fake timing: the last candidate of each class wins; no GPU work.
  const time = async (c: string, cls: string) => {
    timed.push(`${cls}:${c}`);
    const list = candidates(g, cls as never);
    return list.length - list.indexOf(c);
  };
  const first = await autotuneMatmul(g, { ...tuningFromEnv(g.summary, env), time });
  assert.is(first.general.source, 'measured');
  assert.is(first.general.choice, candidates(g, 'general').at(-1));
  assert.equal(chooseMatmul(g, 256, 768, 768), { variant: candidates(g, 'general').at(-1)!.split('/')[0], splits: 1 });
  const measuredCount = timed.length;
  assert.ok(measuredCount > 0);

  const second = await autotuneMatmul(g, { ...tuningFromEnv(g.summary, env), time });
  assert.is(timed.length, measuredCount, 'a cached answer is not measured again');
  assert.is(second['long-k'].source, 'cache');
  assert.equal(second['long-k'].choice, first['long-k'].choice);

  const file = new TuningCache(g.summary, env).file;
  assert.ok(JSON.parse(readFileSync(file, 'utf8')).entries['matmul:small-m']);
  // A cache from before a candidate was added (no timing for it) is measured again.
  const cached = JSON.parse(readFileSync(file, 'utf8'));
  delete cached.entries['matmul:general'].ms[candidates(g, 'general')[0]!];
  writeFileSync(file, JSON.stringify(cached));
  const stale = await autotuneMatmul(g, { ...tuningFromEnv(g.summary, env), time });
  assert.is(stale.general.source, 'measured');
  assert.is(stale['long-k'].source, 'cache');
  writeFileSync(file, '{ not json');
  const warnings: string[] = [];
  const third = await autotuneMatmul(g, { store: new TuningCache(g.summary, env, (m) => warnings.push(m)), time });
  assert.match(warnings.join('\n'), /ignoring corrupt autotune cache/);
  assert.is(third.general.source, 'measured');
  assert.ok(JSON.parse(readFileSync(file, 'utf8')).entries['matmul:general'], 'rewritten after corruption');

  const off = await autotuneMatmul(g, { ...tuningFromEnv(g.summary, { ...env, SEAL_AUTOTUNE: '0' }), time: async () => assert.unreachable('must not time') as never });
  assert.is(off.general.source, 'default');
  resetMatmulTuning(g);
  assert.equal(chooseMatmul(g, 256, 768, 768), defaultChoice(g, 'general'));
});

test('autotune: the lowest median wins, not a lucky sample, and a clearly slower candidate is dropped after one round', async () => {
  const seq: Record<string, number[]> = { steady: [10, 10, 11, 10, 10, 11, 10], lucky: [12, 5, 12, 13, 12, 12, 12], slow: [40] };
  const calls: string[] = [];
  const e = await fastest(['steady', 'lucky', 'slow'], async (c) => {
    calls.push(c);
    return seq[c]![calls.filter((x) => x === c).length - 1]!;
  });
  assert.is(e.choice, 'steady');
  assert.is(calls.filter((c) => c === 'slow').length, 1);
  assert.is(e.ms.lucky, 12);
  // Rounds interleave the candidates.
  assert.equal(calls.slice(3, 7), ['steady', 'lucky', 'steady', 'lucky']);
});

test.run();
