// The SEAL loop on GPT-2: the meta-gradient and ReST-EM learn edits on the bundled model (validation
// passages never trained on), the base stays frozen bit for bit, a killed run resumes to the same
// generator as an uninterrupted one, non-finite rewards skip an iteration, configs are checked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainRun } from '../../src/cli/train.ts';
import { saveCheckpoint } from '../../src/model/checkpoint.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { ConfigError, resolveConfig, type SealConfig } from '../../src/seal/config.ts';
import { Generator } from '../../src/seal/generator.ts';
import { runFiles } from '../../src/seal/run.ts';
import { loadSquad, toSquadFile, writeSquad } from '../../src/tasks/squad.ts';
import { gpu, releaseGpu, sameBits } from '../helpers.ts';
import { writeFileSync } from 'node:fs';
import { byteTokenizer } from '../../src/io/tokenizer.ts';
import { Adapter } from '../../src/seal/adapt.ts';

test.after(releaseGpu);
const dir = mkdtempSync(join(tmpdir(), 'seal-trainer-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const tiny = { vocabSize: 257, nCtx: 64, nLayer: 1, nHead: 2, nEmbd: 16 };

async function fixture(name: string, poison = false): Promise<SealConfig> {
  const g = await gpu();
  const model = GPT2.init(g, tiny, 3);
  // Loading refuses non-finite weights; a finite bias that overflows in the forward still makes NaN rewards.
  if (poison) g.write(model.params.get('h.0.mlp.c_proj.bias')!, new Float32Array(16).fill(3e38));
  const modelPath = join(dir, `${name}.safetensors`);
  await saveCheckpoint(modelPath, model, { tokenizer: 'byte' });
  model.release();
  const train = (await loadSquad('data/knowledge/rl-train.json')).slice(0, 4);
  const held = (await loadSquad('data/knowledge/validation.json')).slice(0, 2);
  await writeSquad(join(dir, 'train.json'), toSquadFile(train));
  await writeSquad(join(dir, 'held.json'), toSquadFile(held));
  writeFileSync(join(dir, 'general.txt'), 'The river runs to the sea.\nA cat sat on the warm wall.\nRain fell all day.\n');
  return resolveConfig({
    model: modelPath,
    data: { train: join(dir, 'train.json'), validation: join(dir, 'held.json'), general: join(dir, 'general.txt') },
    iterations: 4,
    batch: 2,
    group: 2,
    epochs: 2,
    latent: 8,
    evalEvery: 2,
    validationCount: 2,
    forgettingLines: 3,
    checkpointEvery: 2,
  });
}

test('training leaves the base model bit for bit as it was', async () => {
  const g = await gpu();
  const config = await fixture('frozen');
  for (const algo of ['meta', 'ppo', 'rest-em'] as const) {
    const { trainer, model, metrics } = await trainRun(g, join(dir, `run-frozen-${algo}`), { ...config, algo }, false, true);
    assert.is(metrics.length, 4);
    assert.ok(metrics.every((m) => Number.isFinite(m.rewardMean) && !m.skipped), `${algo}: ${JSON.stringify(metrics.map((m) => m.skipped))}`);
    assert.ok(metrics[1]!.validationImprovement !== undefined, 'validation reward logged at evalEvery');
    const before = GPT2.init(g, tiny, 3);
    const want = await before.toArrays();
    const got = await model.toArrays();
    for (const [name, a] of want) sameBits(got.get(name)!, a, `${algo}: ${name}`);
    before.release();
    trainer.release();
    if (algo !== 'meta') {
      model.release();
      continue;
    }
    // Inference-time adaptation with the saved generator: one pass, an edit on the mask only.
    const adapter = await Adapter.load(g, model, byteTokenizer, runFiles(join(dir, 'run-frozen-meta')).policy);
    const { overrides, editNorm } = await adapter.adapt('Here are a few facts about Quorvel Banth. Quorvel Banth was born in 1911.');
    const names = ['h.0.mlp.c_fc.weight', 'h.0.mlp.c_proj.weight'];
    assert.equal([...overrides.keys()], names);
    assert.ok(Number.isFinite(editNorm) && editNorm > 0, `edit norm ${editNorm}`);
    const edited = await g.readMany(names.map((n) => overrides.get(n)!));
    let sq = 0;
    names.forEach((n, k) => {
      const base = want.get(n)!;
      for (let i = 0; i < base.length; i++) sq += (edited[k]![i]! - base[i]!) ** 2;
    });
    assert.ok(Math.abs(Math.sqrt(sq) - editNorm) < 1e-3 * editNorm, `reported norm ${editNorm} is ‖θ′ − θ‖ = ${Math.sqrt(sq)}`);
    adapter.release();
    model.release();
  }
});

test('a killed run resumes to the same policy and metrics as an uninterrupted one', async () => {
  const g = await gpu();
  const config = await fixture('resume');
  const done = (r: Awaited<ReturnType<typeof trainRun>>) => {
    r.trainer.release();
    r.model.release();
  };
  // PPO: the path with the most state (sampling, epochs, KL stop); evalEvery 3 puts the best
  // snapshot at iteration 3, after the kill, so the resumed run must restore it.
  const ppo = { ...config, algo: 'ppo' as const, evalEvery: 3 };
  done(await trainRun(g, join(dir, 'run-straight'), ppo, false, true));
  // Stopped after iteration 2 (as if killed: the checkpoint at 2 exists); rerun with --resume.
  const killed = join(dir, 'run-killed');
  done(await trainRun(g, killed, ppo, false, true, 2));
  assert.not.ok(existsSync(runFiles(killed).policy), 'a stopped run writes no final generator');
  done(await trainRun(g, killed, ppo, true, true));
  for (const file of ['policy', 'checkpoint'] as const) {
    const a = await Generator.read(runFiles(join(dir, 'run-straight'))[file]);
    const b = await Generator.read(runFiles(killed)[file]);
    assert.equal([...b.arrays.keys()], [...a.arrays.keys()]);
    for (const [name, x] of a.arrays) sameBits(b.arrays.get(name)!, x, `${file}: ${name}`);
  }
  const strip = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => {
    const { ms: _ms, ...rest } = JSON.parse(l);
    return rest;
  });
  assert.equal(strip(runFiles(killed).metrics), strip(runFiles(join(dir, 'run-straight')).metrics));
});

test('a non-finite reward skips the iteration and the run goes on', async () => {
  const g = await gpu();
  const config = await fixture('nan', true);
  for (const algo of ['meta', 'ppo'] as const) {
    const { trainer, model, metrics } = await trainRun(g, join(dir, `run-nan-${algo}`), { ...config, algo, iterations: 2, evalEvery: 10 }, false, true);
    assert.is(metrics.length, 2);
    assert.ok(metrics.every((m) => m.skipped?.startsWith('non-finite')), JSON.stringify(metrics.map((m) => m.skipped)));
    trainer.release();
    model.release();
  }
});

test('bad configs and masks are named', async () => {
  assert.throws(() => resolveConfig({ batch: 0 }), (e: Error) => e instanceof ConfigError && /batch: Too small/i.test(e.message));
  assert.throws(() => resolveConfig({ algo: 'sgd' }), /algo: Invalid option/i);
  assert.throws(() => resolveConfig({ directions: ['adam'] }), /directions\.0: Invalid option/i);
  assert.throws(() => resolveConfig({ entropyCoef: 0.01 }), /entropyCoef: entropyCoef acts on log σ only/);
  assert.throws(() => resolveConfig({ mask: { tensors: [] } }), /mask\.tensors/);
  assert.throws(() => resolveConfig({ bogus: 1 }), /Unrecognized key/i);
  const g = await gpu();
  const config = await fixture('badmask');
  await trainRun(g, join(dir, 'run-badmask'), { ...config, mask: { tensors: ['h.7.mlp.c_proj.weight'] } }, false, true).then(
    () => assert.unreachable('trained with a mask naming no tensor'),
    (e: Error) => assert.match(e.message, /matches no tensor/),
  );
});

// Learning on the bundled base model: rl-train passages, then validation passages never trained on.
// The untrained generator's coefficients are ~0 (no edit); a trained one must lower the answer loss
// of passages it never saw by a clear margin.
async function learnedOnBundled(algo: 'meta' | 'rest-em', extra: Partial<SealConfig>): Promise<number> {
  const g = await gpu();
  const train = (await loadSquad('data/knowledge/rl-train.json')).slice(0, 8);
  const val = (await loadSquad('data/knowledge/validation.json')).slice(0, 4);
  await writeSquad(join(dir, 'b-train.json'), toSquadFile(train));
  await writeSquad(join(dir, 'b-val.json'), toSquadFile(val));
  const config = resolveConfig({
    model: 'data/base.safetensors',
    data: { train: join(dir, 'b-train.json'), validation: join(dir, 'b-val.json'), general: 'data/knowledge/general.txt' },
    algo,
    batch: 4,
    validationCount: 4,
    forgettingLines: 4,
    checkpointEvery: 100,
    ...extra,
  });
  const { trainer, model, metrics } = await trainRun(g, join(dir, `run-bundled-${algo}`), config, false, true);
  const init = Adapter.withGenerator(model, byteTokenizer, config);
  const { editNorm } = await init.adapt(val[0]!.context);
  init.release();
  trainer.release();
  model.release();
  assert.ok(editNorm < 0.1, `the untrained generator edits by ${editNorm}: it is not a no-edit start`);
  return Math.max(...metrics.filter((m) => m.validationImprovement !== undefined).map((m) => m.validationImprovement!));
}

test('the meta-gradient learns edits that lower held-back answer loss on the bundled model', async () => {
  const trained = await learnedOnBundled('meta', { iterations: 8, evalEvery: 4, lr: 3e-2 });
  assert.ok(trained > 0.5, `validation NLL drop ${trained.toFixed(3)}`);
});

test('ReST-EM learns edits that lower held-back answer loss on the bundled model', async () => {
  const trained = await learnedOnBundled('rest-em', { iterations: 8, evalEvery: 4, lr: 3e-2, group: 4, initLogStd: 0.7 });
  assert.ok(trained > 0.3, `validation NLL drop ${trained.toFixed(3)}`);
});

test.run();
