// Pretraining: the loss goes down, and a killed run resumed from its checkpoint ends with the same
// bits as a run that was never interrupted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { DEFAULT_OPTIMIZE } from '../../src/model/optimize.ts';
import { pretrain, type PretrainOptions } from '../../src/tasks/pretrain.ts';
import type { Passage } from '../../src/tasks/squad.ts';
import { gpu, releaseGpu, sameBits } from '../helpers.ts';

test.after(releaseGpu);
const dir = mkdtempSync(join(tmpdir(), 'seal-pretrain-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const passages: Passage[] = [
  { id: '0.0', title: 'a', context: 'Zorblat was born in Quenth. Zorblat plays the harp.', questions: [{ id: 'q-a', question: 'Where was Zorblat born?', answers: ['Quenth'] }] },
  { id: '0.1', title: 'b', context: 'Miravel founded Dusk Mills in 1901.', questions: [{ id: 'q2-a', question: 'Who founded Dusk Mills?', answers: ['Miravel'] }] },
];

const options = (out: string, steps: number): PretrainOptions => ({
  passages,
  out,
  model: { vocabSize: 257, nCtx: 16, nLayer: 1, nHead: 2, nEmbd: 16 },
  optimize: { ...DEFAULT_OPTIMIZE, lr: 1e-2, warmup: 2, totalSteps: steps },
  tokenizer: 'byte',
  batch: 4,
  seq: 16,
  seed: 3,
  checkpointEvery: 2,
  resume: true,
});

test('the loss goes down on a tiny corpus', async () => {
  const g = await gpu();
  const { model, losses } = await pretrain(g, options(join(dir, 'loss.safetensors'), 40));
  const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(last < first - 1, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  model.release();
});

test('a killed run resumes to the same bits as an uninterrupted one', async () => {
  const g = await gpu();
  const straight = await pretrain(g, options(join(dir, 'straight.safetensors'), 8));
  const want = await straight.model.toArrays();
  straight.model.release();

  const out = join(dir, 'killed.safetensors');
  const killAt = 5; // checkpoints at 2 and 4; dies during step 5
  await pretrain(g, {
    ...options(out, 8),
    onStep: ({ step }) => {
      if (step === killAt) throw new Error('killed');
    },
  }).then(
    () => assert.unreachable('the run was not killed'),
    (e: Error) => assert.is(e.message, 'killed'),
  );
  let resumedFrom = -1;
  const resumed = await pretrain(g, { ...options(out, 8), onResume: (s) => (resumedFrom = s) });
  assert.is(resumedFrom, 4);
  const got = await resumed.model.toArrays();
  for (const [name, a] of want) sameBits(got.get(name)!, a, name);
  resumed.model.release();
  const ck = await loadCheckpoint(g, out, { optimizer: true });
  assert.is(ck.optimizer?.step, 8);
  ck.model.release();
  for (const m of [ck.optimizer!.m, ck.optimizer!.v]) for (const t of m.values()) t.release();
});

test('resume refuses other settings than the checkpoint was made with', async () => {
  const g = await gpu();
  const out = join(dir, 'settings.safetensors');
  (await pretrain(g, options(out, 2))).model.release();
  await pretrain(g, { ...options(out, 4), seed: 4 }).then(
    () => assert.unreachable('resumed with another seed'),
    (e: Error) => assert.match(e.message, /was trained with seed 3.*same settings/),
  );
});

test.run();
