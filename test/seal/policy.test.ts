import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../../src/gpu/gpu.ts';
import type { F32 } from '../../src/gpu/tensor.ts';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { adamw } from '../../src/ops/optimizer.ts';
import { gaussianLogProb, normalizeAdvantages, ppoLoss, ppoLossBackward } from '../../src/ops/ppo.ts';
import * as ref from '../../src/reference/policy.ts';
import { gaussianSample as gaussianSampleRef } from '../../src/reference/ppo.ts';
import { Policy, policyParamShapes, type PolicyConfig } from '../../src/seal/policy.ts';
import { close, gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

const dir = await mkdtemp(join(tmpdir(), 'seal-policy-'));
test.after(async () => {
  releaseGpu();
  await rm(dir, { recursive: true, force: true });
});

const r = rng(23);
const SMALL: PolicyConfig = { inputDim: 5, latent: 7, actionDim: 13, initLogStd: -1 };
// [N, config]: one sample at awkward sizes, and a long action past many workgroups and matmul tiles.
const CASES: [number, PolicyConfig][] = [1, 6].flatMap((N) => [
  [N, SMALL],
  [N, { ...SMALL, actionDim: 4099 }],
] as [number, PolicyConfig][]);

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** f32 sums over thousands of terms cancel: absolute tolerances scale with the largest value. */
const maxAbs = (a: ArrayLike<number>) => Math.max(1, ...Array.from(a, Math.abs));

/** O(1) parameters (init's decoder is too small to test anything), log σ in [−0.5, 0.5]. */
function randomArrays(config: PolicyConfig): Map<string, Float32Array> {
  return new Map(
    policyParamShapes(config).map(([name, shape]) => {
      const n = numel(shape);
      const data = name === 'log_std' ? r.uniformArray(n, -0.5, 0.5) : r.uniformArray(n, -1, 1);
      return [name, data];
    }),
  );
}

interface Inputs {
  ctx: Float32Array;
  dMu: Float32Array;
}

function inputs(N: number, c: PolicyConfig): Inputs {
  return { ctx: r.uniformArray(N * c.inputDim), dMu: r.uniformArray(N * c.actionDim) };
}

function upload(g: Gpu, N: number, c: PolicyConfig, x: Inputs) {
  return {
    ctx: g.tensor(x.ctx, [N, c.inputDim]),
    dMu: g.tensor(x.dMu, [N, c.actionDim]),
  };
}

test('reference backward agrees with finite differences of sum(μ ⊙ G) (f64)', async () => {
  const c = SMALL;
  const N = 3;
  const params = new Map([...randomArrays(c)].map(([k, v]) => [k, Float64Array.from(v)]));
  const x = inputs(N, c);
  const G = x.dMu;
  const loss = () => ref.policyForward(c, params, x.ctx, N).mu.reduce((s, m, i) => s + m * G[i]!, 0);
  const grads = ref.policyBackward(c, params, x.ctx, N, G);
  assert.equal([...grads.keys()].sort(), policyParamShapes(c).map(([n]) => n).filter((n) => n !== 'log_std').sort());
  for (const [name, expected] of grads) {
    close(expected, await numericGrad(loss, params.get(name)!), 1e-6, 1e-8, name);
  }
});

test('forward, backward (accumulating) and sample match the reference', async () => {
  const g = await gpu();
  for (const [N, c] of CASES) {
    const what = `N=${N} D=${c.actionDim}`;
    const arrays = randomArrays(c);
    const policy = Policy.fromArrays(g, c, arrays);
    const x = inputs(N, c);
    const t = upload(g, N, c, x);
    const pass = policy.forward(t.ctx);
    assert.equal(pass.mu.shape, [N, c.actionDim]);
    // Gradients start non-zero: backward must add to them, and leave log_std's alone.
    const start = randomArrays(c);
    const grads = new Map([...start].map(([k, v]) => [k, g.tensor(v, policy.params.get(k)!.shape)]));
    pass.backward(t.dMu, grads);
    const noise = r.normalArray(N * c.actionDim);
    const actions = policy.sample(pass.mu, g.tensor(noise, [N, c.actionDim]));
    const names = [...grads.keys()];
    const [mu, a, ...gs] = await g.readMany([pass.mu, actions, ...names.map((n) => grads.get(n)!)]);
    const e = ref.policyForward(c, arrays, x.ctx, N);
    close(mu!, e.mu, 1e-5, 1e-6 * maxAbs(e.mu), `mu ${what}`);
    close(a!, gaussianSampleRef(mu!, arrays.get('log_std')!, noise, c.actionDim), 1e-6, 1e-6, `sample ${what}`);
    const eg = ref.policyBackward(c, arrays, x.ctx, N, x.dMu);
    names.forEach((name, i) => {
      const delta = eg.get(name) ?? new Float64Array(start.get(name)!.length);
      const expected = start.get(name)!.map((s, j) => s + delta[j]!);
      close(gs[i]!, expected, 1e-5, 1e-5 * maxAbs(expected), `d${name} ${what}`);
    });
    pass.release();
    policy.release();
  }
});

test('ReLU at exactly 0 passes no gradient (the PyTorch subgradient)', async () => {
  const g = await gpu();
  // Small integers: every value is exact in f32, so pre-activations hit 0 exactly.
  const c: PolicyConfig = { inputDim: 3, latent: 4, actionDim: 2, initLogStd: 0 };
  const arrays = new Map<string, Float32Array>([
    ['enc.weight', Float32Array.of(1, 0, 0, 1, 1, -1, 0, 0, 0, -1, 1, -1)],
    ['enc.bias', Float32Array.of(-1, 0, 0, 1)],
    ['dec.weight', Float32Array.of(1, 2, -1, 1, 2, 0, 1, -3)],
    ['dec.bias', Float32Array.of(0.5, -0.5)],
    ['log_std', Float32Array.of(0, 0)],
  ]);
  // Pre-activations: row 0 [0, 0, 0, 2], row 1 [0, −2, 1, 0]; dh = dMu·Wdecᵀ: row 0 [3, 0, 2, −2], row 1 [0, −3, 4, 5].
  const ctx = Float32Array.of(1, 0, 0, 0, 1, 1);
  const dMu = Float32Array.of(1, 1, 2, -1);
  const h = ref.policyForward(c, arrays, ctx, 2).h;
  assert.equal(Array.from(h), [0, 0, 0, 2, 0, 0, 1, 0]);
  const policy = Policy.fromArrays(g, c, arrays);
  const pass = policy.forward(g.tensor(ctx, [2, 3]));
  const grads = policy.zerosLike();
  pass.backward(g.tensor(dMu, [2, 2]), grads);
  const [dEncB, dEncW] = await g.readMany([grads.get('enc.bias')!, grads.get('enc.weight')!]);
  const e = ref.policyBackward(c, arrays, ctx, 2, dMu);
  assert.equal(Array.from(dEncB!), Array.from(e.get('enc.bias')!));
  assert.equal(Array.from(dEncW!), Array.from(e.get('enc.weight')!));
  // Only positive units pass dh; with relu'(0) = 1 units 0 and 3 would get 3 + 0 and −2 + 5.
  assert.equal(Array.from(dEncB!), [0, 0, 4, -2]);
  pass.release();
  policy.release();
  for (const t of grads.values()) t.release();
});

test('init: He encoder, tiny decoder, zero biases, log σ as configured; seeded', async () => {
  const g = await gpu();
  const c: PolicyConfig = { inputDim: 64, latent: 32, actionDim: 300, initLogStd: -2.5 };
  const a = await Policy.init(g, c, 5).toArrays();
  const std = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
  close([std(a.get('enc.weight')!)], [Math.sqrt(2 / 64)], 0.1, 0, 'enc std');
  close([std(a.get('dec.weight')!)], [1e-3 / Math.sqrt(32)], 0.1, 0, 'dec std');
  for (const name of ['enc.bias', 'dec.bias']) assert.ok(a.get(name)!.every((v) => v === 0), name);
  assert.ok(a.get('log_std')!.every((v) => v === Math.fround(-2.5)));
  assert.equal([...a.keys()], policyParamShapes(c).map(([n]) => n));
  sameBits((await Policy.init(g, c, 5).toArrays()).get('dec.weight')!, a.get('dec.weight')!, 'same seed');
  assert.not.equal((await Policy.init(g, c, 6).toArrays()).get('enc.weight'), a.get('enc.weight'), 'another seed');
});

test('forward and backward are deterministic', async () => {
  const g = await gpu();
  const [N, c] = CASES.at(-1)!;
  const policy = Policy.fromArrays(g, c, randomArrays(c));
  const t = upload(g, N, c, inputs(N, c));
  const once = async () => {
    const pass = policy.forward(t.ctx);
    const grads = policy.zerosLike();
    pass.backward(t.dMu, grads);
    const out = await g.readMany([pass.mu, ...grads.values()]);
    pass.release();
    return out;
  };
  const [a, b] = [await once(), await once()];
  a.forEach((v, i) => sameBits(v as Float32Array, b[i] as Float32Array, `output ${i}`));
});

test('live tensors return to the start after init, forward, backward, sample and release', async () => {
  const g = await gpu();
  const before = g.liveTensors;
  for (const [N, c] of [CASES[0]!, CASES.at(-1)!]) {
    const policy = Policy.init(g, c, 1);
    const t = upload(g, N, c, inputs(N, c));
    const pass = policy.forward(t.ctx);
    const grads = policy.zerosLike();
    pass.backward(t.dMu, grads);
    const noise = g.tensor(r.normalArray(N * c.actionDim), [N, c.actionDim]);
    const actions = policy.sample(pass.mu, noise);
    await g.sync();
    pass.release();
    policy.release();
    for (const x of [t.ctx, t.dMu, noise, actions, ...grads.values()]) x.release();
  }
  assert.is(g.liveTensors, before, g.liveLabels().join(', '));
});

test('bad shapes, missing inputs and bad configs are named', async () => {
  const g = await gpu();
  const policy = Policy.init(g, SMALL, 1);
  const ctx = g.zeros([2, 5]);
  const dMu = g.zeros([2, 13]);
  assert.throws(() => policy.forward(g.zeros([2, 6])), /Policy\.forward: ctx must have shape \[2×5\], got \[2×6\]/);
  assert.throws(() => policy.forward(g.zeros([10])), /Policy\.forward: ctx must be 2-D \[N, 5\]/);
  const pass = policy.forward(ctx);
  const grads = policy.zerosLike();
  assert.throws(() => pass.backward(g.zeros([3, 13]), grads), /PolicyPass\.backward: dMu must have shape \[2×13\], got \[3×13\]/);
  grads.delete('dec.bias');
  assert.throws(() => pass.backward(dMu, grads), /grads has no 'dec\.bias'/);
  grads.set('dec.bias', g.zeros([12]));
  assert.throws(() => pass.backward(dMu, grads), /grads 'dec\.bias' must have shape \[13\], got \[12\]/);
  assert.throws(() => policy.sample(g.zeros([2, 12]), g.zeros([2, 12])), /Policy\.sample: mu must have shape \[\*×13\], got \[2×12\]/);
  assert.throws(() => policy.sample(pass.mu, g.zeros([2, 12])), /gaussianSample: noise must have shape \[2×13\]/);
  pass.release();
  assert.throws(() => pass.backward(dMu, grads), /the pass was released/);
  const arrays = randomArrays(SMALL);
  arrays.set('dec.weight', new Float32Array(90));
  assert.throws(() => Policy.fromArrays(g, SMALL, arrays), /Policy: dec\.weight needs 91 f32 values for \[7×13\], got 90/);
  arrays.delete('enc.bias');
  assert.throws(() => Policy.fromArrays(g, SMALL, arrays), /Policy: missing parameter enc\.bias \[7\]/);
  assert.throws(() => Policy.init(g, { ...SMALL, latent: 0 }, 1), /PolicyConfig: latent must be a positive integer, got 0/);
  assert.throws(() => Policy.init(g, { ...SMALL, inputDim: 2.5 }, 1), /inputDim must be a positive integer/);
  assert.throws(() => Policy.init(g, { ...SMALL, initLogStd: NaN }, 1), /initLogStd must be a finite number/);
});

test('save/load round trip keeps parameters, config and metadata', async () => {
  const g = await gpu();
  for (const c of [SMALL, { ...SMALL, actionDim: 4099 }]) {
    const arrays = randomArrays(c);
    const path = join(dir, `policy-${c.actionDim}.safetensors`);
    await Policy.fromArrays(g, c, arrays).save(path, { iteration: '12' });
    const loaded = await Policy.load(g, path);
    assert.equal(loaded.config, c);
    const back = await loaded.toArrays();
    assert.equal([...back.keys()], [...arrays.keys()]);
    for (const [name, data] of arrays) sameBits(back.get(name)!, data, name);
    const f = await openSafetensors(path);
    assert.is(f.metadata.iteration, '12');
    await f.close();
  }
  // Policies saved while the gradSkip option existed have "gradSkip": false in their config; they still load.
  const arrays = randomArrays(SMALL);
  const old = join(dir, 'policy-old.safetensors');
  const config = JSON.stringify({ ...SMALL, gradSkip: false });
  await writeSafetensors(old, policyParamShapes(SMALL).map(([n, shape]) => [n, { shape, data: arrays.get(n)! }]), { format: 'seal-webgpu/policy', config });
  const loaded = await Policy.load(g, old);
  assert.equal(loaded.config, SMALL);
  for (const [name, data] of await loaded.toArrays()) sameBits(data, arrays.get(name)!, `old file ${name}`);
  loaded.release();
  const policy = Policy.init(g, SMALL, 1);
  await rejects(policy.save(join(dir, 'x.safetensors'), { config: '{}' }), /metadata key\(s\) config are written by save itself/);
  policy.release();
});

test('bad policy files give clear errors', async () => {
  const g = await gpu();
  const path = (name: string) => join(dir, name);
  const good = randomArrays(SMALL);
  // One tensor more than the policy has: grad_gain, the parameter of the removed gradSkip option.
  const shapes = new Map([...policyParamShapes(SMALL), ['grad_gain', [1]]]);
  const tensors = (arrays: Map<string, Float32Array>): [string, TensorToWrite][] => [...arrays].map(([name, data]) => [name, { shape: shapes.get(name)!, data }]);
  const meta = { format: 'seal-webgpu/policy', config: JSON.stringify(SMALL) };

  await rejects(Policy.load(g, path('missing.safetensors')), /ENOENT/);
  await writeFile(path('garbage.safetensors'), 'not a safetensors file at all');
  await rejects(Policy.load(g, path('garbage.safetensors')), /header length .* runs past the end of the file/);
  await writeSafetensors(path('nometa.safetensors'), tensors(good));
  await rejects(Policy.load(g, path('nometa.safetensors')), /not a seal-webgpu policy \(metadata format null, expected 'seal-webgpu\/policy'\)/);
  await writeSafetensors(path('badjson.safetensors'), tensors(good), { ...meta, config: '{latent' });
  await rejects(Policy.load(g, path('badjson.safetensors')), /policy config metadata is missing or not JSON/);
  await writeSafetensors(path('badconfig.safetensors'), tensors(good), { ...meta, config: JSON.stringify({ ...SMALL, actionDim: -3 }) });
  await rejects(Policy.load(g, path('badconfig.safetensors')), /badconfig\.safetensors: policy config: actionDim must be a positive integer, got -3/);
  const missing = new Map(good);
  missing.delete('dec.bias');
  await writeSafetensors(path('missingtensor.safetensors'), tensors(missing), meta);
  await rejects(Policy.load(g, path('missingtensor.safetensors')), /no tensor 'dec\.bias'/);
  await writeSafetensors(path('shape.safetensors'), tensors(good).map(([n, t]): [string, TensorToWrite] => [n, n === 'enc.weight' ? { ...t, shape: [7, 5] } : t]), meta);
  await rejects(Policy.load(g, path('shape.safetensors')), /tensor 'enc\.weight' has shape \[7×5\], expected \[5×7\]/);
  await writeSafetensors(path('extra.safetensors'), tensors(new Map([...good, ['grad_gain', Float32Array.of(1)]])), meta);
  await rejects(Policy.load(g, path('extra.safetensors')), /tensor\(s\) grad_gain do not belong to a policy with config \{"inputDim":5,"latent":7,"actionDim":13,"initLogStd":-1\}/);
});

test('PPO trains the policy on a two-context bandit: the mean action moves to each target', async () => {
  const g = await gpu();
  const c: PolicyConfig = { inputDim: 4, latent: 16, actionDim: 3, initLogStd: Math.log(0.5) };
  const contexts = [
    [1, 0, 0.5, -0.5],
    [0, 1, -0.5, 0.5],
  ];
  const targets = [
    [0.8, -0.5, 0.3],
    [-0.6, 0.4, 0.9],
  ];
  const G = 32; // samples per context; advantages are normalised within each group
  const B = 2 * G;
  const D = c.actionDim;
  const ctx = g.tensor(Float32Array.from({ length: B * c.inputDim }, (_, i) => contexts[Math.floor(i / c.inputDim / G)]![i % c.inputDim]!), [B, c.inputDim]);
  const policy = Policy.init(g, c, 3);
  const [m, v] = [policy.zerosLike(), policy.zerosLike()];
  const noiseRng = rng(99);
  const ppo = { clip: 0.2, entropyCoef: 0 };
  const distances = async () => {
    const pass = policy.forward(ctx);
    const mu = await g.read(pass.mu);
    pass.release();
    return [0, 1].map((k) => Math.hypot(...targets[k]!.map((t, d) => mu[k * G * D + d]! - t)));
  };
  const start = await distances();
  const [iterations, epochs] = [50, 2];
  let step = 0;
  for (let iter = 0; iter < iterations; iter++) {
    const rollout = policy.forward(ctx);
    const noise = g.tensor(noiseRng.normalArray(B * D), [B, D]);
    const actions = policy.sample(rollout.mu, noise);
    const logpOld = gaussianLogProb(g, rollout.mu, policy.params.get('log_std')!, actions);
    // The environment: reward −‖a − target(ctx)‖², computed on the host from the actions.
    const a = await g.read(actions);
    const rewards = Float32Array.from({ length: B }, (_, b) => -targets[Math.floor(b / G)]!.reduce((s, t, d) => s + (a[b * D + d]! - t) ** 2, 0));
    const raw = g.tensor(rewards);
    const advantages = normalizeAdvantages(g, raw, G);
    for (let epoch = 0; epoch < epochs; epoch++) {
      const pass = epoch === 0 ? rollout : policy.forward(ctx);
      const batch = { mu: pass.mu, logStd: policy.params.get('log_std')!, actions, logpOld, advantages };
      const fwd = ppoLoss(g, batch, ppo);
      const { dMu, dLogStd } = ppoLossBackward(g, batch, fwd.ratio, ppo);
      const grads = policy.zerosLike();
      pass.backward(dMu, grads);
      g.copy(dLogStd, grads.get('log_std')!);
      // A linearly decaying rate: at a constant one Adam's steps leave μ jittering around the target.
      const lr = 0.05 * (1 - step / (iterations * epochs));
      step++;
      for (const [name, p] of policy.params) adamw(g, p, grads.get(name)!, m.get(name)!, v.get(name)!, step, { lr, weightDecay: 0 });
      pass.release();
      for (const t of [fwd.logp, fwd.ratio, fwd.stats, dMu, dLogStd, ...grads.values()]) t.release();
    }
    for (const t of [noise, actions, logpOld, raw, advantages]) t.release();
  }
  const end = await distances();
  assert.ok(start.every((d) => d > 0.9), `initial distances ${start}`);
  assert.ok(end.every((d) => d < 0.1), `distances to the targets went from ${start} to ${end}`);
  // Exploration narrows as the policy homes in (no entropy bonus here).
  const logStd = await g.read(policy.params.get('log_std')!);
  assert.ok(logStd.every((s) => s < c.initLogStd - 1), `log σ ${logStd}`);
  policy.release();
});

test.run();
