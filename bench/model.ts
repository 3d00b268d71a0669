// Model-level benchmarks on a named shape (src/model/shapes.ts): tokens per second of a forward, a
// training step (forward, backward, clipping, AdamW) and generation with the KV cache, and the peak
// GPU bytes of each, for every weight dtype the adapter has (f32; f16 with shader-f16). A shape's
// family says which model builds it: another family plugs in by adding its entry to FAMILIES.
// Peer in the same run: the plain-JavaScript f64 reference forward (src/reference/gpt2.ts) on the
// tiny shape. With gpt2-small, the stand-in the earlier bench used (GPT-2 small's layers with a
// 16384-token vocabulary, all that fit one binding before tensors were split) runs too, as a ratio.
//
// Rows follow the bench schema { name, kind, shape, ms, gflops, adapter }, plus tokensPerS,
// peakGpuBytes and dtype.
//
// Run: node --import tsx bench/model.ts [shape] [--json] [--quick]
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import type { Gpu } from '../src/gpu/gpu.ts';
import { dawnGpu } from '../src/io/dawn.ts';
import { tuningFromEnv } from '../src/io/tuning-cache.ts';
import type { BenchRow } from '../src/gpu/kernel-bench.ts';
import type { GPT2Config } from '../src/model/config.ts';
import { generateTokens } from '../src/model/generate.ts';
import { GPT2, type WeightDtype } from '../src/model/gpt2.ts';
import { Llama } from '../src/model/llama.ts';
import type { LanguageModel } from '../src/model/lm.ts';
import { paramCountOf, type ModelConfig } from '../src/model/memory.ts';
import { DEFAULT_OPTIMIZE, Optimizer } from '../src/model/optimize.ts';
import { MODEL_SHAPES, modelShape, type ModelShape } from '../src/model/shapes.ts';
import { autotuneMatmul } from '../src/ops/matmul.ts';
import * as ref from '../src/reference/gpt2.ts';
import { Rng } from '../src/util/random.ts';

/** The bench schema's row (gflops: model FLOPs per second / 1e9, 2 per parameter per token forward, 6 for a training step), plus tokens/s, peak bytes and dtype. */
export interface ModelRow extends Pick<BenchRow, 'name' | 'kind' | 'shape' | 'ms' | 'adapter'> {
  gflops: number;
  tokensPerS: number;
  /** Most bytes of GPU buffers held during the case (the model's weights included). */
  peakGpuBytes: number;
  dtype: WeightDtype;
  note?: string;
}

/** A random model of a shape, by its family. */
const randomModel = (gpu: Gpu, shape: ModelShape, dtype: WeightDtype): LanguageModel => (shape.family === 'llama' ? Llama.init(gpu, shape.config, 1, dtype) : GPT2.init(gpu, shape.config, 1, dtype));

interface Sizes {
  /** Sequences × positions of a forward / training step. */
  B: number;
  T: number;
  prompt: number;
  maxNew: number;
}

export async function modelBench(opts: { json: boolean; quick?: boolean; shape?: string }): Promise<ModelRow[]> {
  const names = opts.shape ? [opts.shape] : ['gpt2-tiny'];
  const shapes = names.map((n) => [n, modelShape(n)] as const);
  const gpu = await dawnGpu();
  const adapter = `${gpu.summary.description || gpu.summary.device} [${gpu.summary.backend}]`;
  const rows: ModelRow[] = [];
  const say = (s: string) => {
    if (!opts.json) console.log(s);
  };
  const emit = (r: ModelRow) => {
    rows.push(r);
    if (opts.json) console.log(JSON.stringify(r));
    else say(`  ${r.name.padEnd(44)} ${r.tokensPerS.toFixed(1).padStart(9)} tok/s ${r.ms.toFixed(1).padStart(10)} ms ${(r.peakGpuBytes / 2 ** 20).toFixed(0).padStart(6)} MiB peak${r.note ? `  (${r.note})` : ''}`);
  };
  try {
    const tuning = await autotuneMatmul(gpu, tuningFromEnv(gpu.summary));
    say(`adapter: ${adapter}`);
    say(`matmul choice per shape class: ${Object.entries(tuning).map(([c, t]) => `${c}=${t.choice} (${t.source})`).join(', ')}`);
    const quick = opts.quick ?? false;
    const dtypes: WeightDtype[] = process.env.SEAL_DTYPE ? [gpu.weightDtype] : ['f32', ...(gpu.features.has('shader-f16') ? (['f16'] as const) : [])];
    for (const [name, shape] of shapes) {
      const sizes: Sizes = { B: 1, T: quick ? shape.seq / 2 : shape.seq, prompt: 16, maxNew: quick ? 8 : 16 };
      say(`\n${name} ${describe(shape.config)}`);
      for (const dtype of dtypes) {
        for (const r of await modelCases(gpu, name, shape, sizes, dtype, quick)) emit({ ...r, adapter });
      }
      if (shape.family === 'gpt2' && name === 'gpt2-small') {
        // The earlier stand-in, in the same run: forward only.
        const stand: ModelShape = { ...shape, config: { ...shape.config, vocabSize: 16384 } };
        for (const r of await modelCases(gpu, `${name} layers, vocab 16384`, stand, sizes, 'f32', quick, ['forward'])) emit({ ...r, adapter });
      }
      if (shape.family === 'gpt2' && shape.config.vocabSize <= 1024) {
        const T = quick ? 8 : 16;
        const peer = await referenceForward(shape.config, T);
        emit({ name: `${name} plain JS f64 reference forward 1×${T}`, kind: 'peer', shape: name, ...peer, gflops: gflops(shape.config, T, peer.ms, 2), adapter: 'CPU (JS)', peakGpuBytes: 0, dtype: 'f32' });
      }
    }
  } finally {
    gpu.destroy();
  }
  return rows;
}

const describe = (c: ModelConfig) => `(V=${c.vocabSize}, ctx=${c.nCtx}, L=${c.nLayer}, H=${c.nHead}${'nKvHead' in c ? `, KV heads=${c.nKvHead}` : ''}, C=${c.nEmbd}, ${(paramCountOf(c) / 1e6).toFixed(1)} M parameters)`;
const gflops = (c: ModelConfig, tokens: number, ms: number, perParam: number) => (perParam * paramCountOf(c) * tokens) / (ms * 1e6);

type Case = 'forward' | 'train' | 'generate';

async function modelCases(gpu: Gpu, name: string, shape: ModelShape, s: Sizes, dtype: WeightDtype, quick: boolean, cases: Case[] = ['forward', 'train', 'generate']): Promise<Omit<ModelRow, 'adapter'>[]> {
  const config = shape.config;
  const m = randomModel(gpu, shape, dtype);
  const r = new Rng(2);
  const ids = (n: number) => Uint32Array.from({ length: n }, () => r.int(config.vocabSize));
  const tokens = gpu.tensor(ids(s.B * s.T), [s.B, s.T]);
  const targets = gpu.tensor(ids(s.B * s.T), [s.B, s.T]);
  const rows: Omit<ModelRow, 'adapter'>[] = [];
  const row = (what: string, n: number, perParam: number, t: Timed) =>
    rows.push({ name: `${name} ${what} ${dtype}`, kind: 'ours', shape: name, ms: t.ms, gflops: gflops(config, n, t.ms, perParam), tokensPerS: (n / t.ms) * 1000, peakGpuBytes: t.peak, dtype, ...(t.note ? { note: t.note } : {}) });
  try {
    if (cases.includes('forward')) {
      const t = await time(gpu, quick, async () => {
        const pass = m.forward(tokens);
        await gpu.sync();
        pass.release();
      });
      row(`forward ${s.B}×${s.T}`, s.B * s.T, 2, t);
    }
    if (cases.includes('train')) {
      const opt = new Optimizer(m, DEFAULT_OPTIMIZE);
      const t = await time(gpu, quick, () => opt.update(tokens, targets));
      opt.release();
      row(`training step ${s.B}×${s.T}`, s.B * s.T, 6, t);
    }
    if (cases.includes('generate')) {
      const prompts = [Array.from(ids(s.prompt))];
      const t = await time(gpu, quick, () => generateTokens(m, prompts, { maxNew: s.maxNew }));
      row(`generate 1×(${s.prompt}+${s.maxNew}) KV cache`, s.maxNew, 2, t);
    }
  } finally {
    for (const t of [tokens, targets]) t.release();
    m.release();
    gpu.trim();
  }
  return rows;
}

/** The f64 CPU reference forward of one sequence of T tokens. */
async function referenceForward(config: GPT2Config, T: number): Promise<{ tokensPerS: number; ms: number; note?: string }> {
  const r = new Rng(3);
  const params = ref.initParams(config, r);
  const tokens = Array.from({ length: T }, () => r.int(config.vocabSize));
  const targets = new Uint32Array(T).fill(ref.IGNORE);
  const fn = async () => ref.forward(config, params, tokens, targets, 1, T);
  await fn();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  return { tokensPerS: (T / ms) * 1000, ms, note: 'one timed call' };
}

interface Timed {
  ms: number;
  peak: number;
  note?: string;
}

/**
 * Mean ms per call: one warm-up call (compiles pipelines), then tinybench; one timed call if slow.
 * The peak counts from the buffers held before the case (the pool trimmed), over warm-up and timing.
 */
async function time(gpu: Gpu, quick: boolean, fn: () => Promise<unknown>): Promise<Timed> {
  await gpu.sync();
  gpu.trim();
  gpu.resetPeak();
  await fn();
  const t0 = performance.now();
  await fn();
  const once = performance.now() - t0;
  if (once > (quick ? 1000 : 4000)) return { ms: once, peak: gpu.peakBytes, note: 'one timed call' };
  const bench = new Bench({ time: quick ? 300 : 2000, iterations: quick ? 2 : 4, warmup: false });
  bench.add('case', fn);
  await bench.run();
  const res = bench.tasks[0]!.result as { latency?: { mean: number }; error?: unknown };
  if (!res.latency) throw new Error(`benchmark failed: ${String(res.error)}`);
  return { ms: res.latency.mean, peak: gpu.peakBytes };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const shape = args.find((a) => !a.startsWith('--'));
  if (shape && !(shape in MODEL_SHAPES)) throw new Error(`unknown shape ${shape}: ${Object.keys(MODEL_SHAPES).join(', ')}`);
  await modelBench({ json: args.includes('--json'), quick: args.includes('--quick'), ...(shape ? { shape } : {}) });
}
