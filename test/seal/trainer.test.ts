// The SEAL loop on a tiny model: the base stays frozen bit for bit, a killed run resumes to the
// same policy as an uninterrupted one, non-finite rewards skip an iteration, configs are checked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainRun } from '../../src/cli/train.ts';
import { saveCheckpoint } from '../../src/model/checkpoint.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { ConfigError, resolveConfig, type SealConfig } from '../../src/seal/config.ts';
import { readHeads } from '../../src/seal/heads.ts';
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
  if (poison) g.write(model.params.get('h.0.mlp.c_proj.bias')!, new Float32Array(16).fill(NaN));
  const modelPath = join(dir, `${name}.safetensors`);
  await saveCheckpoint(modelPath, model, { tokenizer: 'byte' });
  model.release();
  const train = (await loadSquad('data/knowledge/rl-train.json')).slice(0, 4);
  const held = (await loadSquad('data/knowledge/held-out.json')).slice(0, 2);
  await writeSquad(join(dir, 'train.json'), toSquadFile(train));
  await writeSquad(join(dir, 'held.json'), toSquadFile(held));
  writeFileSync(join(dir, 'general.txt'), 'The river runs to the sea.\nA cat sat on the warm wall.\nRain fell all day.\n');
  return resolveConfig({
    model: modelPath,
    data: { train: join(dir, 'train.json'), heldOut: join(dir, 'held.json'), general: join(dir, 'general.txt') },
    mask: { tensors: ['h.0.mlp.c_proj.weight'] },
    iterations: 4,
    batch: 2,
    group: 2,
    epochs: 2,
    latent: 8,
    evalEvery: 2,
    heldOutCount: 2,
    forgettingLines: 3,
    checkpointEvery: 2,
  });
}

test('training leaves the base model bit for bit as it was', async () => {
  const g = await gpu();
  const config = await fixture('frozen');
  const { trainer, metrics } = await trainRun(g, join(dir, 'run-frozen'), config, false, true);
  assert.is(metrics.length, 4);
  assert.ok(metrics.every((m) => Number.isFinite(m.rewardMean) && !m.skipped));
  assert.ok(metrics[1]!.heldOutImprovement !== undefined, 'held-out reward logged at evalEvery');
  const before = GPT2.init(g, tiny, 3);
  const want = await before.toArrays();
  const got = await trainer.model.toArrays();
  for (const [name, a] of want) sameBits(got.get(name)!, a, name);
  before.release();

  // Inference-time adaptation with the saved generator: one pass, an edit on the mask only.
  const adapter = await Adapter.load(g, trainer.model, byteTokenizer, runFiles(join(dir, 'run-frozen')).policy);
  const { overrides, editNorm } = await adapter.adapt('Here are a few facts about Quorvel Banth. Quorvel Banth was born in 1911.');
  assert.equal([...overrides.keys()], ['h.0.mlp.c_proj.weight']);
  assert.ok(Number.isFinite(editNorm) && editNorm > 0, `edit norm ${editNorm}`);
  const edited = await g.read(overrides.get('h.0.mlp.c_proj.weight')!);
  const base = want.get('h.0.mlp.c_proj.weight')!;
  let sq = 0;
  for (let i = 0; i < base.length; i++) sq += (edited[i]! - base[i]!) ** 2;
  assert.ok(Math.abs(Math.sqrt(sq) - editNorm) < 1e-3 * editNorm, 'reported norm is ‖θ′ − θ‖');
  adapter.release();
  trainer.release();
  trainer.model.release();
});

test('a killed run resumes to the same policy and metrics as an uninterrupted one', async () => {
  const g = await gpu();
  const config = await fixture('resume');
  const straight = await trainRun(g, join(dir, 'run-straight'), config, false, true);
  straight.trainer.release();
  straight.trainer.model.release();
  // "Killed" after iteration 2: the checkpoint at 2 exists; rerun with --resume.
  const killed = join(dir, 'run-killed');
  const first = await trainRun(g, killed, { ...config, iterations: 2 }, false, true);
  first.trainer.release();
  first.trainer.model.release();
  writeFileSync(runFiles(killed).config, JSON.stringify(config)); // the same run, meant to go to 4
  const resumed = await trainRun(g, killed, config, true, true);
  resumed.trainer.release();
  resumed.trainer.model.release();
  const a = await readHeads(runFiles(join(dir, 'run-straight')).policy);
  const b = await readHeads(runFiles(killed).policy);
  for (const [name, x] of a.arrays) sameBits(b.arrays.get(name)!, x, name);
  const strip = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => {
    const { ms: _ms, ...rest } = JSON.parse(l);
    return rest;
  });
  assert.equal(strip(runFiles(killed).metrics), strip(runFiles(join(dir, 'run-straight')).metrics));
});

test('a non-finite reward skips the iteration and the run goes on', async () => {
  const g = await gpu();
  const config = await fixture('nan', true);
  const { trainer, metrics } = await trainRun(g, join(dir, 'run-nan'), { ...config, iterations: 2, evalEvery: 10 }, false, true);
  assert.is(metrics.length, 2);
  assert.ok(metrics.every((m) => m.skipped?.startsWith('non-finite reward')), JSON.stringify(metrics.map((m) => m.skipped)));
  trainer.release();
  trainer.model.release();
});

test('bad configs and masks are named', async () => {
  assert.throws(() => resolveConfig({ batch: 0 }), (e: Error) => e instanceof ConfigError && /batch: Too small/i.test(e.message));
  assert.throws(() => resolveConfig({ edit: 'sparse' }), /edit: Invalid option/i);
  assert.throws(() => resolveConfig({ mask: { tensors: [] } }), /mask\.tensors/);
  assert.throws(() => resolveConfig({ bogus: 1 }), /Unrecognized key/i);
  const g = await gpu();
  const config = await fixture('badmask');
  await trainRun(g, join(dir, 'run-badmask'), { ...config, mask: { tensors: ['h.7.mlp.c_proj.weight'] } }, false, true).then(
    () => assert.unreachable('trained with a mask naming no tensor'),
    (e: Error) => assert.match(e.message, /matches no tensor/),
  );
  await trainRun(g, join(dir, 'run-lowrank-grad'), { ...config, edit: 'lowrank' }, false, true).then(
    () => assert.unreachable('gradient features with low-rank edits'),
    (e: Error) => assert.match(e.message, /needs dense edits/),
  );
});

test.run();
