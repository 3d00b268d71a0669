// Soak: long runs must not leak. After a warm-up, live tensors, live bytes and the bytes the buffer
// pool holds stay flat over many pretraining steps and many SEAL iterations on a tiny model.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { byteTokenizer } from '../../src/io/tokenizer.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { DEFAULT_OPTIMIZE } from '../../src/model/optimize.ts';
import { resolveConfig } from '../../src/seal/config.ts';
import { SealTrainer } from '../../src/seal/trainer.ts';
import { pretrain } from '../../src/tasks/pretrain.ts';
import { loadSquad } from '../../src/tasks/squad.ts';
import { gpu, releaseGpu } from '../helpers.ts';

test.after(releaseGpu);
const dir = mkdtempSync(join(tmpdir(), 'seal-soak-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const TINY = { vocabSize: 257, nCtx: 64, nLayer: 1, nHead: 2, nEmbd: 16 };

interface Sample {
  tensors: number;
  bytes: number;
  pooled: number;
}
const sample = (g: Gpu): Sample => ({ tensors: g.liveTensors, bytes: g.liveBytes, pooled: g.poolStats.pooledBytes });

/** Every sample after `warmup` equals the first of them, in each of the three counts. */
function assertFlat(samples: readonly Sample[], warmup: number, what: string): void {
  const after = samples.slice(warmup);
  assert.ok(after.length >= 10, `${what}: ${after.length} samples after warm-up`);
  for (const key of ['tensors', 'bytes', 'pooled'] as const) {
    const xs = after.map((s) => s[key]);
    assert.ok(xs.every((x) => x === xs[0]), `${what}: ${key} after warm-up is not flat: ${xs.join(' ')}`);
  }
}

test('pretraining: 120 steps, flat after 5', async () => {
  const g = await gpu();
  const passages = (await loadSquad('data/knowledge/pretrain.json')).slice(0, 8);
  const samples: Sample[] = [];
  const { model } = await pretrain(g, {
    passages,
    out: join(dir, 'pretrain.safetensors'),
    model: TINY,
    optimize: { ...DEFAULT_OPTIMIZE, warmup: 5, totalSteps: 120 },
    tokenizer: 'byte',
    batch: 4,
    seq: 64,
    seed: 1,
    checkpointEvery: 1000,
    resume: false,
    onStep: () => void samples.push(sample(g)),
  });
  model.release();
  assertFlat(samples, 5, 'pretraining');
});

test('SEAL: 20 iterations of PPO and of the meta-gradient on a tiny random model, flat after warm-up', async () => {
  const g = await gpu();
  const model = GPT2.init(g, TINY, 3);
  const data = {
    train: (await loadSquad('data/knowledge/rl-train.json')).slice(0, 4),
    validation: (await loadSquad('data/knowledge/validation.json')).slice(0, 2),
    general: readFileSync('data/knowledge/general.txt', 'utf8').split('\n').filter(Boolean).slice(0, 8),
  };
  for (const algo of ['ppo', 'meta'] as const) {
    // Every iteration takes all four passages, so every one uses the same shapes (sizes in the pool).
    const config = resolveConfig({ algo, iterations: 20, batch: 4, group: 2, epochs: 2, latent: 8, evalEvery: 2, validationCount: 2, forgettingLines: 3 });
    const before = g.liveTensors;
    const trainer = await SealTrainer.create(model, byteTokenizer, config, data);
    const samples: Sample[] = [];
    for (let i = 0; i < config.iterations; i++) {
      await trainer.step();
      samples.push(sample(g));
    }
    trainer.release();
    assertFlat(samples, 6, `SEAL ${algo} iterations`);
    assert.is(g.liveTensors, before, `SEAL ${algo}: the released trainer leaves nothing live`);
  }
  model.release();
});

test.run();
