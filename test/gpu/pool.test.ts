// The buffer pool: reused buffers are cleared where they must be, results keep their bits, and a
// training loop stops creating buffers once warm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { dawnGpu } from '../../src/io/dawn.ts';
import { sizeClass } from '../../src/gpu/pool.ts';
import { DEFAULT_OPTIMIZE } from '../../src/model/optimize.ts';
import { pretrain } from '../../src/tasks/pretrain.ts';
import { gpu, releaseGpu, sameBits } from '../helpers.ts';

test.after(releaseGpu);
const dir = mkdtempSync(join(tmpdir(), 'seal-pool-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('size classes: 16-byte steps, then at most a quarter of slack', () => {
  assert.equal([0, 4, 17, 256, 257, 1000, 1024, 1025].map(sizeClass), [16, 16, 32, 256, 320, 1024, 1024, 1280]);
  for (let b = 1; b < 1 << 20; b = Math.ceil(b * 1.37)) {
    const c = sizeClass(b);
    assert.ok(c >= b && c <= Math.max(16, b * 1.25 + 16), `${b} → ${c}`);
  }
});

test('a released buffer is reused once the GPU is done, and zeros clears it', async () => {
  const g = await gpu();
  const junk = g.tensor(new Float32Array(64).fill(7));
  await g.sync();
  junk.release();
  await g.sync(); // its submit is done: the buffer is free
  const before = g.poolStats;
  assert.ok(before.pooledBytes >= 256);
  const z = g.zeros([64]);
  assert.is(g.poolStats.created, before.created, 'reused, not created');
  assert.equal(await g.read(z), new Float32Array(64));
  z.release();
  await g.sync();
  assert.ok(g.trim() >= 256);
  assert.is(g.poolStats.pooledBytes, 0);
  assert.is(g.poolStats.pooledBuffers, 0);
});

test('pretraining gives the same bits with and without the pool, and stops creating buffers', async () => {
  const run = async (g: Gpu, name: string) => {
    const created: number[] = [];
    const { model } = await pretrain(g, {
      passages: [{ id: '0.0', title: 'a', context: 'Zorblat was born in Quenth. Zorblat plays the harp.', questions: [{ id: 'q', question: 'Where was Zorblat born?', answers: ['Quenth'] }] }],
      out: join(dir, name),
      model: { vocabSize: 257, nCtx: 16, nLayer: 1, nHead: 2, nEmbd: 16 },
      optimize: { ...DEFAULT_OPTIMIZE, lr: 1e-2, warmup: 2, totalSteps: 6 },
      tokenizer: 'byte',
      batch: 2,
      seq: 16,
      seed: 3,
      checkpointEvery: 100,
      resume: false,
      onStep: () => void created.push(g.poolStats.created),
    });
    const params = await model.toArrays();
    model.release();
    return { params, created };
  };
  const pooled = await run(await gpu(), 'pooled.safetensors');
  const plain = await dawnGpu({ pool: false });
  try {
    const unpooled = await run(plain, 'plain.safetensors');
    for (const [name, want] of unpooled.params) sameBits(pooled.params.get(name)!, want, name);
    const perStep = (c: number[]) => c.at(-1)! - c.at(-2)!;
    assert.ok(perStep(unpooled.created) > 20, `unpooled creates ${perStep(unpooled.created)} per step`);
    assert.is(perStep(pooled.created), 0, 'pooled steps create no buffers once warm');
  } finally {
    plain.destroy();
  }
});

test.run();
