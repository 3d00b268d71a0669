// GPU buffer creations per pretraining step and per model forward / forward+backward, with the
// buffer pool off (SEAL_POOL=0's behaviour) and on, in one run. A tinybench pass times the same
// calls; the count is what the pool is for (a creation is a driver allocation, and on a real GPU
// often a page-table update). Tensor buffers only: a readback's staging buffer is not counted.
//
// Run: node --import tsx bench/buffers.ts [--json]   (or: seal bench --pool)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import type { Gpu } from '../src/gpu/gpu.ts';
import { dawnGpu, optionsFromEnv } from '../src/io/dawn.ts';
import type { GPT2Config } from '../src/model/config.ts';
import { GPT2 } from '../src/model/gpt2.ts';
import { DEFAULT_OPTIMIZE } from '../src/model/optimize.ts';
import { pretrain } from '../src/tasks/pretrain.ts';
import { Rng } from '../src/util/random.ts';

/** The bundled model's shape (data/base.safetensors). */
const TINY: GPT2Config = { vocabSize: 257, nCtx: 128, nLayer: 2, nHead: 4, nEmbd: 128 };
const B = 4;
const T = 64;
const STEPS = 12;
const WARM = 2;

interface Row {
  case: string;
  pool: boolean;
  /** Tensor buffers created per call once warm (mean over the timed calls). */
  createdPerCall: number;
  /** Created by the first (cold) call. */
  createdCold: number;
  ms: number;
  pooledMiB: number;
}

export async function buffersBench(opts: { json: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  for (const pool of [false, true]) {
    const gpu = await dawnGpu({ ...optionsFromEnv(), pool });
    try {
      rows.push(await pretrainSteps(gpu, pool), ...(await modelCalls(gpu, pool)));
    } finally {
      gpu.destroy();
    }
  }
  for (const r of rows) {
    if (opts.json) console.log(JSON.stringify(r));
    else console.log(`${r.case.padEnd(28)} pool ${r.pool ? 'on ' : 'off'}  ${r.createdPerCall.toFixed(1).padStart(7)} buffers/call (cold ${r.createdCold})  ${r.ms.toFixed(1).padStart(8)} ms/call  pooled ${r.pooledMiB.toFixed(2)} MiB`);
  }
  return rows;
}

/** A pretraining run of STEPS steps: creations per step after WARM steps. */
async function pretrainSteps(gpu: Gpu, pool: boolean): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'seal-bench-buffers-'));
  const created: number[] = [];
  const times: number[] = [];
  try {
    const start = gpu.poolStats.created;
    const { model } = await pretrain(gpu, {
      passages: [{ id: '0.0', title: 'a', context: 'Zorblat was born in Quenth in 1871. Zorblat plays the harp and keeps bees.', questions: [{ id: 'q', question: 'Where was Zorblat born?', answers: ['Quenth'] }] }],
      out: join(dir, 'model.safetensors'),
      model: TINY,
      optimize: { ...DEFAULT_OPTIMIZE, warmup: 2, totalSteps: STEPS },
      tokenizer: 'byte',
      batch: B,
      seq: T,
      seed: 1,
      checkpointEvery: 1000,
      resume: false,
      onStep: () => {
        created.push(gpu.poolStats.created - start);
        times.push(performance.now());
      },
    });
    model.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const n = created.length - 1 - WARM;
  return {
    case: `pretrain step ${B}×${T}`,
    pool,
    createdPerCall: (created.at(-1)! - created[WARM]!) / n,
    createdCold: created[0]!,
    ms: (times.at(-1)! - times[WARM]!) / n,
    pooledMiB: gpu.poolStats.pooledBytes / 2 ** 20,
  };
}

/** Forward, and forward + backward, of the tiny model, each timed by tinybench. */
async function modelCalls(gpu: Gpu, pool: boolean): Promise<Row[]> {
  const m = GPT2.init(gpu, TINY, 1);
  const r = new Rng(2);
  const ids = () => Uint32Array.from({ length: B * T }, () => r.int(TINY.vocabSize));
  const tokens = gpu.tensor(ids(), [B, T]);
  const targets = gpu.tensor(ids(), [B, T]);
  const grads = m.zerosLike();
  const cases: [string, () => Promise<void>][] = [
    [`forward ${B}×${T}`, async () => {
      const pass = m.forward(tokens);
      await gpu.sync();
      pass.release();
    }],
    [`forward+backward ${B}×${T}`, async () => {
      const pass = m.forward(tokens, targets);
      pass.backward(grads);
      await gpu.sync();
      pass.release();
    }],
  ];
  const rows: Row[] = [];
  try {
    for (const [name, fn] of cases) {
      const before = gpu.poolStats.created;
      await fn();
      const createdCold = gpu.poolStats.created - before;
      await fn();
      await gpu.sync(); // the warm-up's buffers are back in the pool
      const bench = new Bench({ time: 500, iterations: 8, warmup: false });
      const deltas: number[] = [];
      bench.add(name, async () => {
        const b = gpu.poolStats.created;
        await fn();
        deltas.push(gpu.poolStats.created - b);
      });
      await bench.run();
      const res = bench.tasks[0]!.result as { latency?: { mean: number }; error?: unknown };
      if (!res.latency) throw new Error(`benchmark failed: ${String(res.error)}`);
      rows.push({
        case: name,
        pool,
        createdPerCall: deltas.reduce((a, b) => a + b, 0) / deltas.length,
        createdCold,
        ms: res.latency.mean,
        pooledMiB: gpu.poolStats.pooledBytes / 2 ** 20,
      });
    }
  } finally {
    for (const t of [tokens, targets, ...grads.values()]) t.release();
    m.release();
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buffersBench({ json: process.argv.includes('--json') });
}
