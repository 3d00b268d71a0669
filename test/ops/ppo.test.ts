import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Gpu } from '../../src/gpu/gpu.ts';
import {
  PpoStat,
  gaussianLogProb,
  gaussianSample,
  normalizeAdvantages,
  ppoLoss,
  ppoLossBackward,
  type PpoBatch,
  type PpoConfig,
} from '../../src/ops/ppo.ts';
import * as ref from '../../src/reference/ppo.ts';
import { close, gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

const r = rng(31);
const CFG: PpoConfig = { clip: 0.2, entropyCoef: 0.01 };
// B = 1, D prime, D past one 64-wide workgroup, B past the surrogate's single workgroup.
const SHAPES: [number, number][] = [
  [1, 1],
  [1, 7],
  [5, 13],
  [3, 67],
  [17, 131],
  [70, 3],
];

/** A batch whose ratios lie in [0.5, 1.6] but at least 0.03 from the clip edges, so f32 and f64 take the same branch. */
function makeBatch(B: number, D: number, advantages = r.normalArray(B)): ref.PpoData {
  const mu = r.uniformArray(B * D);
  const logStd = r.uniformArray(D, -0.5, 0.5);
  const actions = mu.map((m, i) => m + Math.exp(logStd[i % D]!) * r.normal());
  const logp = ref.gaussianLogProb(mu, logStd, actions, B, D);
  const logpOld = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    let ratio: number;
    do ratio = 0.5 + 1.1 * r.next();
    while (Math.abs(ratio - 1 - CFG.clip) < 0.03 || Math.abs(ratio - 1 + CFG.clip) < 0.03);
    logpOld[b] = logp[b]! - Math.log(ratio);
  }
  return { mu, logStd, actions, logpOld, advantages, B, D };
}

function upload(g: Gpu, x: ref.PpoData): PpoBatch {
  const f = (a: ArrayLike<number>, shape: number[]) => g.tensor(Float32Array.from(a), shape);
  return { mu: f(x.mu, [x.B, x.D]), logStd: f(x.logStd, [x.D]), actions: f(x.actions, [x.B, x.D]), logpOld: f(x.logpOld, [x.B]), advantages: f(x.advantages, [x.B]) };
}

test('log-probabilities match the reference', async () => {
  const g = await gpu();
  for (const [B, D] of SHAPES) {
    const x = makeBatch(B, D);
    const t = upload(g, x);
    close(await g.read(gaussianLogProb(g, t.mu, t.logStd, t.actions)), ref.gaussianLogProb(x.mu, x.logStd, x.actions, B, D), 1e-5, 1e-5, `logp ${B}×${D}`);
  }
});

test('gaussianSample matches the reference, log σ broadcast over rows', async () => {
  const g = await gpu();
  for (const [N, D] of [[1, 1], [1, 13], [17, 7], [3, 4099]] as const) {
    const mu = r.uniformArray(N * D, -1, 1);
    const logStd = r.uniformArray(D, -2, 1);
    const noise = r.normalArray(N * D);
    const out = gaussianSample(g, g.tensor(mu, [N, D]), g.tensor(logStd), g.tensor(noise, [N, D]));
    assert.equal(out.shape, [N, D]);
    close(await g.read(out), ref.gaussianSample(mu, logStd, noise, D), 1e-6, 1e-6, `sample ${N}×${D}`);
  }
  const a = await g.read(gaussianSample(g, g.tensor(Float32Array.of(NaN, Infinity, -Infinity, 2), [1, 4]), g.zeros([4]), g.tensor(Float32Array.of(1, 1, 1, NaN), [1, 4])));
  assert.ok(Number.isNaN(a[0]) && a[1] === Infinity && a[2] === -Infinity && Number.isNaN(a[3]), `NaN and Inf propagate: ${a}`);
});

test('surrogate loss, entropy, approx KL, clip fraction and gradients match the reference', async () => {
  const g = await gpu();
  for (const [B, D] of SHAPES) {
    const x = makeBatch(B, D);
    const t = upload(g, x);
    const fwd = ppoLoss(g, t, CFG);
    const { dMu, dLogStd } = ppoLossBackward(g, t, fwd.ratio, CFG);
    const [stats, ratio, gMu, gLogStd] = await g.readMany([fwd.stats, fwd.ratio, dMu, dLogStd]);
    const e = ref.ppoLoss(x, CFG.clip, CFG.entropyCoef);
    const what = `${B}×${D}`;
    close(ratio!, e.ratio, 1e-4, 0, `ratio ${what}`);
    close(stats!, [e.loss, e.policyLoss, e.entropy, e.approxKl, e.clipFraction], 1e-4, 1e-5, `stats ${what}`);
    const eg = ref.ppoLossBackward(x, CFG.clip, CFG.entropyCoef);
    close(gMu!, eg.dMu, 1e-4, 1e-6, `dMu ${what}`);
    close(gLogStd!, eg.dLogStd, 1e-4, 1e-6, `dLogStd ${what}`);
  }
});

test('reference PPO gradients agree with finite differences of the reference loss (f64)', async () => {
  for (const [B, D] of [
    [1, 7],
    [6, 5],
  ] as const) {
    const x = makeBatch(B, D);
    const mu = Float64Array.from(x.mu);
    const logStd = Float64Array.from(x.logStd);
    const loss = (m: ArrayLike<number>, s: ArrayLike<number>) => ref.ppoLoss({ ...x, mu: m, logStd: s }, CFG.clip, CFG.entropyCoef).loss;
    const e = ref.ppoLossBackward(x, CFG.clip, CFG.entropyCoef);
    close(e.dMu, await numericGrad((m) => loss(m, logStd), mu), 1e-6, 1e-9, `dMu ${B}×${D}`);
    close(e.dLogStd, await numericGrad((s) => loss(mu, s), logStd), 1e-6, 1e-9, `dLogStd ${B}×${D}`);
  }
});

/** The unclipped gradient wrt μ for sample b: −(1/B)·A·r·(a − μ)/σ². */
function unclippedDMu(x: ref.PpoData, ratio: number, b: number): number[] {
  return Array.from({ length: x.D }, (_, d) => (-x.advantages[b]! * ratio * (x.actions[b * x.D + d]! - x.mu[b * x.D + d]!)) / Math.exp(2 * x.logStd[d]!) / x.B);
}

test('clip semantics: zero past the edge on the advantage side, unclipped inside and exactly at the edges', async () => {
  const g = await gpu();
  // ratio targets and advantages: clipped (A>0, r>1+ε), clipped (A<0, r<1−ε), inside, min picks the
  // unclipped term (A>0, r<1−ε and A<0, r>1+ε), near the upper edge, near the lower edge.
  const targets = [1.5, 0.5, 1.05, 0.5, 1.5, 1.19, 0.83];
  const x = makeBatch(targets.length, 3, Float32Array.from([1, -1, 1, 1, -1, 1, -1]));
  const logp = ref.gaussianLogProb(x.mu, x.logStd, x.actions, x.B, x.D);
  x.logpOld = Float32Array.from(logp, (lp, b) => lp - Math.log(targets[b]!));
  const t = upload(g, x);
  const run = async (clip: number) => {
    const cfg = { clip, entropyCoef: 0 };
    const fwd = ppoLoss(g, t, cfg);
    const [ratio, dMu, stats] = await g.readMany([fwd.ratio, ppoLossBackward(g, t, fwd.ratio, cfg).dMu, fwd.stats]);
    const row = (b: number) => Array.from(dMu!.subarray(b * x.D, (b + 1) * x.D));
    return { ratio: ratio!, row, clipFraction: stats![PpoStat.clipFraction]! };
  };
  const base = await run(0.2);
  assert.equal(base.row(0), [0, 0, 0], 'A>0, r>1+ε: zero');
  assert.equal(base.row(1), [0, 0, 0], 'A<0, r<1−ε: zero');
  for (const b of [2, 3, 4]) close(base.row(b), unclippedDMu(x, base.ratio[b]!, b), 1e-5, 1e-7, `sample ${b}: unclipped`);
  close([base.clipFraction], [4 / 7], 1e-6, 0, 'clip fraction');

  // Put the ratio of sample 5 exactly on 1+ε and of sample 6 exactly on 1−ε (both exact in f32).
  const [r5, r6] = [base.ratio[5]!, base.ratio[6]!];
  const upper = await run(r5 - 1);
  assert.ok(upper.ratio[5] === r5);
  close([upper.clipFraction], [4 / 7], 1e-6, 0, 'a ratio on the edge is not clipped');
  close(upper.row(5), unclippedDMu(x, r5, 5), 1e-5, 1e-7, 'r = 1+ε, A>0: unclipped');
  assert.ok(upper.row(5).every((v) => v !== 0));
  const pastUpper = await run(r5 - 1 - 2 ** -23);
  assert.equal(pastUpper.row(5), [0, 0, 0], 'r one ulp past 1+ε, A>0: zero');
  const lower = await run(1 - r6);
  close(lower.row(6), unclippedDMu(x, r6, 6), 1e-5, 1e-7, 'r = 1−ε, A<0: unclipped');
  assert.ok(lower.row(6).every((v) => v !== 0));
  const pastLower = await run(1 - r6 - 2 ** -24);
  assert.equal(pastLower.row(6), [0, 0, 0], 'r one ulp past 1−ε, A<0: zero');
  // The reference takes the same subgradients.
  assert.is(ref.dObjectiveDRatio(1.2, 2, 0.2), 2);
  assert.is(ref.dObjectiveDRatio(1.2 + 1e-9, 2, 0.2), 0);
  assert.is(ref.dObjectiveDRatio(0.8, -2, 0.2), -2);
  assert.is(ref.dObjectiveDRatio(0.8 - 1e-9, -2, 0.2), 0);
});

test('advantage normalisation per batch and per group', async () => {
  const g = await gpu();
  for (const [n, G] of [
    [1, 1],
    [12, 1],
    [12, 3],
    [12, 4],
    [12, 12],
    [1010, 10],
    [131, 131],
  ] as const) {
    const a = r.uniformArray(n, -3, 5);
    close(await g.read(normalizeAdvantages(g, g.tensor(a), G)), ref.normalizeAdvantages(a, G), 1e-5, 1e-5, `n=${n} G=${G}`);
  }
  const z = await g.read(normalizeAdvantages(g, g.tensor(new Float32Array([1, 2, 3, 5]))));
  close([z.reduce((s, v) => s + v, 0)], [0], 0, 1e-6, 'mean 0');
  close([Math.sqrt(z.reduce((s, v) => s + v * v, 0) / 3)], [1], 1e-6, 0, 'unbiased std 1');
});

test('NaN advantages give NaN, not zero', async () => {
  const g = await gpu();
  const adv = Float32Array.from([0.5, NaN, -1, 2]);
  const x = makeBatch(4, 5, adv);
  const t = upload(g, x);
  const fwd = ppoLoss(g, t, CFG);
  const { dMu, dLogStd } = ppoLossBackward(g, t, fwd.ratio, CFG);
  const [stats, gMu, gLogStd] = await g.readMany([fwd.stats, dMu, dLogStd]);
  assert.ok(Number.isNaN(stats![PpoStat.loss]) && Number.isNaN(stats![PpoStat.policyLoss]), `stats ${stats}`);
  assert.ok(Array.from(gMu!.subarray(5, 10)).every(Number.isNaN), 'the NaN sample’s dMu');
  assert.ok(Array.from(gMu!.subarray(0, 5)).every(Number.isFinite), 'other samples unaffected');
  assert.ok(Array.from(gLogStd!).every(Number.isNaN), 'dLogStd sums over the batch');
  const norm = await g.read(normalizeAdvantages(g, g.tensor(Float32Array.from([1, NaN, 2, 3, 4, 5])), 3));
  assert.ok([0, 1, 2].every((i) => Number.isNaN(norm[i])) && [3, 4, 5].every((i) => Number.isFinite(norm[i])), `${norm}`);
});

test('PPO kernels are deterministic', async () => {
  const g = await gpu();
  const t = upload(g, makeBatch(70, 131));
  const once = async () => {
    const fwd = ppoLoss(g, t, CFG);
    const { dMu, dLogStd } = ppoLossBackward(g, t, fwd.ratio, CFG);
    return g.readMany([fwd.logp, fwd.stats, dMu, dLogStd, normalizeAdvantages(g, t.advantages, 7), gaussianSample(g, t.mu, t.logStd, t.actions)]);
  };
  const [a, b] = [await once(), await once()];
  a.forEach((v, i) => sameBits(v as Float32Array, b[i] as Float32Array, `output ${i}`));
});

test('bad input gives named errors', async () => {
  const g = await gpu();
  const t = upload(g, makeBatch(4, 5));
  assert.throws(() => ppoLoss(g, { ...t, mu: g.zeros([20]) }, CFG), /ppoLoss: mu must be 2-D \[B, D\]/);
  assert.throws(() => ppoLoss(g, { ...t, logStd: g.zeros([4]) }, CFG), /ppoLoss: logStd must have shape \[5\], got \[4\]/);
  assert.throws(() => ppoLoss(g, { ...t, actions: g.zeros([5, 4]) }, CFG), /ppoLoss: actions must have shape \[4×5\], got \[5×4\]/);
  assert.throws(() => ppoLoss(g, { ...t, advantages: g.zeros([3]) }, CFG), /ppoLoss: advantages must have shape \[4\]/);
  assert.throws(() => ppoLoss(g, { ...t, logpOld: g.zeros([4], 'u32') as never }, CFG), /ppoLoss: logpOld must be f32/);
  assert.throws(() => ppoLoss(g, t, { clip: -0.1, entropyCoef: 0 }), /ppoLoss: clip must be ≥ 0/);
  assert.throws(() => ppoLossBackward(g, t, g.zeros([5]), CFG), /ppoLossBackward: ratio must have shape \[4\]/);
  assert.throws(() => gaussianLogProb(g, g.zeros([0, 5]), t.logStd, g.zeros([0, 5])), /gaussianLogProb: the batch is empty/);
  assert.throws(() => gaussianLogProb(g, t.mu, t.logStd, t.actions, t.mu), /gaussianLogProb: out must have shape \[4\]/);
  const [a, b] = [g.zeros([2, 3]), g.zeros([3, 2])];
  assert.throws(() => gaussianSample(g, g.zeros([6]), g.zeros([6]), g.zeros([6])), /gaussianSample: mu must be 2-D/);
  assert.throws(() => gaussianSample(g, a, g.zeros([2]), a), /gaussianSample: logStd must have shape \[3\], got \[2\]/);
  assert.throws(() => gaussianSample(g, a, g.zeros([3]), b), /gaussianSample: noise must have shape \[2×3\]/);
  assert.throws(() => normalizeAdvantages(g, g.zeros([12]), 5), /normalizeAdvantages: groupSize 5 must be a positive divisor of the batch size 12/);
  assert.throws(() => normalizeAdvantages(g, t.advantages, 4, t.advantages), /normalizeAdvantages: out must not be one of the inputs/);
});

test.run();
