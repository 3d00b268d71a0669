// Model-level benchmarks: tokens per second of a forward, a training step's forward + backward,
// and generation with and without the KV cache, for the tiny config and for GPT-2 small's shape
// (or, where the adapter's storage bindings cannot hold GPT-2's embedding, its layers with a
// smaller vocabulary, said so in the output). Peer in the same run: the plain-JavaScript f64
// reference forward (src/reference/gpt2.ts) on the tiny config.
//
// Run: node --import tsx bench/model.ts [--json] [--quick]
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import type { Gpu } from '../src/gpu/gpu.ts';
import { dawnGpu } from '../src/io/dawn.ts';
import { tuningFromEnv } from '../src/io/tuning-cache.ts';
import { GPT2_SMALL, paramCount, type GPT2Config } from '../src/model/config.ts';
import type { BenchRow } from './index.ts';
import { generateTokens } from '../src/model/generate.ts';
import { GPT2 } from '../src/model/gpt2.ts';
import { autotuneMatmul } from '../src/ops/matmul.ts';
import * as ref from '../src/reference/gpt2.ts';
import { Rng } from '../src/util/random.ts';

const TINY: GPT2Config = { vocabSize: 257, nCtx: 128, nLayer: 2, nHead: 4, nEmbd: 128 };
/** GPT-2 small's layers with a vocabulary whose embedding fits a 128 MiB binding (lavapipe's). */
const SMALL_LAYERS: GPT2Config = { ...GPT2_SMALL, vocabSize: 16384 };

/** bench/index.ts's row schema, plus tokens/s; `name` is model and case, `shape` the model's config. */
interface Row extends Omit<BenchRow, 'ceilingFraction' | 'vsTfjs'> {
  model: string;
  case: string;
  /** Tokens processed (forward, training) or generated (generation) per second. */
  tokensPerS: number;
}

/**
 * Useful FLOPs per token of a forward at context length T, the usual estimate: 2 per parameter
 * (the tied head included, the embedding lookup not free of it) plus 4·L·T·C for attention;
 * ×3 with the backward. Generation counts one such forward per new token, cache or not.
 */
const flopsPerToken = (c: GPT2Config, T: number, train: boolean) => (2 * paramCount(c) + 4 * c.nLayer * T * c.nEmbd) * (train ? 3 : 1);

interface Shapes {
  /** Sequences × positions of a forward / training step. */
  B: number;
  T: number;
  /** Prompt length and new tokens of a generation, for each batch size. */
  prompt: number;
  maxNew: number;
  genBatches: number[];
}

export async function modelBench(opts: { json: boolean; quick?: boolean }): Promise<void> {
  const gpu = await dawnGpu();
  const adapter = `${gpu.summary.description || gpu.summary.device} [${gpu.summary.backend}]`;
  const say = (s: string) => {
    if (!opts.json) console.log(s);
  };
  const emit = (r: Row) => {
    if (opts.json) console.log(JSON.stringify(r));
    else say(`  ${r.case.padEnd(36)} ${r.tokensPerS.toFixed(1).padStart(10)} tok/s  ${r.ms.toFixed(1).padStart(10)} ms/call${r.note ? `  (${r.note})` : ''}`);
  };
  try {
    const tuning = await autotuneMatmul(gpu, tuningFromEnv(gpu.summary));
    say(`adapter: ${adapter}`);
    say(`matmul choice per shape class: ${Object.entries(tuning).map(([c, t]) => `${c}=${t.choice} (${t.source})`).join(', ')}`);
    const quick = opts.quick ?? false;
    const tiny: Shapes = { B: 4, T: 64, prompt: 16, maxNew: quick ? 16 : 32, genBatches: [1, 4] };
    const small: Shapes = { B: 1, T: quick ? 32 : 64, prompt: 16, maxNew: quick ? 8 : 16, genBatches: [1] };

    say(`\ntiny ${describe(TINY)}`);
    for (const r of await modelCases(gpu, 'tiny', TINY, tiny, quick)) emit({ ...r, adapter });
    const refT = quick ? 8 : 16;
    const ref = await referenceForward(TINY, refT);
    const refCase = `plain JS f64 reference forward 1×${refT}`;
    emit({ name: `tiny ${refCase}`, kind: 'peer', shape: describe(TINY), model: 'tiny', case: refCase, ...ref, gflops: (ref.tokensPerS * flopsPerToken(TINY, refT, false)) / 1e9, adapter });

    const tooBig = bindingProblem(gpu, GPT2_SMALL, small);
    const smallConfig = tooBig ? SMALL_LAYERS : GPT2_SMALL;
    const name = tooBig ? `gpt2-small layers, vocab ${SMALL_LAYERS.vocabSize}` : 'gpt2-small';
    if (tooBig) {
      say(`\ngpt2-small ${describe(GPT2_SMALL)}: skipped, ${tooBig}`);
      if (opts.json) console.log(JSON.stringify({ model: 'gpt2-small', skipped: tooBig, adapter }));
    }
    say(`\n${name} ${describe(smallConfig)}`);
    for (const r of await modelCases(gpu, name, smallConfig, small, quick)) emit({ ...r, adapter });
  } finally {
    gpu.destroy();
  }
}

const describe = (c: GPT2Config) => `(V=${c.vocabSize}, ctx=${c.nCtx}, L=${c.nLayer}, H=${c.nHead}, C=${c.nEmbd})`;

/** Why a config cannot run here (its wte or its logits over the binding limit), or null. */
function bindingProblem(gpu: Gpu, c: GPT2Config, s: Shapes): string | null {
  const max = gpu.limits.maxStorageBufferBindingSize;
  const tensors: [string, number][] = [
    [`wte [${c.vocabSize}×${c.nEmbd}]`, c.vocabSize * c.nEmbd * 4],
    [`logits [${s.B * s.T}×${c.vocabSize}]`, s.B * s.T * c.vocabSize * 4],
  ];
  const over = tensors.find(([, bytes]) => bytes > max);
  return over ? `${over[0]} needs ${(over[1] / 2 ** 20).toFixed(1)} MiB, over this adapter's maxStorageBufferBindingSize of ${(max / 2 ** 20).toFixed(0)} MiB` : null;
}

async function modelCases(gpu: Gpu, model: string, config: GPT2Config, s: Shapes, quick: boolean): Promise<Omit<Row, 'adapter'>[]> {
  const m = GPT2.init(gpu, config, 1);
  const r = new Rng(2);
  const ids = (n: number) => Uint32Array.from({ length: n }, () => r.int(config.vocabSize));
  const tokens = gpu.tensor(ids(s.B * s.T), [s.B, s.T]);
  const targets = gpu.tensor(ids(s.B * s.T), [s.B, s.T]);
  const grads = m.zerosLike();
  const rows: Omit<Row, 'adapter'>[] = [];
  const row = (name: string, n: number, ms: number, flopsEach: number, note?: string) =>
    rows.push({ name: `${model} ${name}`, kind: 'ours', shape: describe(config), model, case: name, tokensPerS: (n / ms) * 1000, ms, gflops: (n * flopsEach) / ms / 1e6, ...(note ? { note } : {}) });
  try {
    const forward = await time(quick, async () => {
      const pass = m.forward(tokens);
      await gpu.sync();
      pass.release();
    });
    row(`forward ${s.B}×${s.T}`, s.B * s.T, forward.ms, flopsPerToken(config, s.T, false), forward.note);
    const train = await time(quick, async () => {
      const pass = m.forward(tokens, targets);
      pass.backward(grads);
      await gpu.sync();
      pass.release();
    });
    row(`forward+backward ${s.B}×${s.T}`, s.B * s.T, train.ms, flopsPerToken(config, s.T, true), train.note);
    for (const B of s.genBatches) {
      const prompts = Array.from({ length: B }, () => Array.from(ids(s.prompt)));
      for (const cache of [true, false]) {
        const gen = await time(quick, () => generateTokens(m, prompts, { maxNew: s.maxNew, cache }));
        row(`generate ${B}×(${s.prompt}+${s.maxNew}) ${cache ? 'KV cache' : 'no cache'}`, B * s.maxNew, gen.ms, flopsPerToken(config, s.prompt + s.maxNew / 2, false), gen.note);
      }
    }
  } finally {
    for (const t of [tokens, targets, ...grads.values()]) t.release();
    m.release();
  }
  return rows;
}

/** The f64 CPU reference forward of one sequence of T tokens. */
async function referenceForward(config: GPT2Config, T: number): Promise<{ tokensPerS: number; ms: number; note?: string }> {
  const r = new Rng(3);
  const params = ref.initParams(config, r);
  const tokens = Array.from({ length: T }, () => r.int(config.vocabSize));
  const targets = new Uint32Array(T).fill(ref.IGNORE);
  const { ms, note } = await time(true, async () => {
    ref.forward(config, params, tokens, targets, 1, T);
  });
  return { tokensPerS: (T / ms) * 1000, ms, ...(note ? { note } : {}) };
}

/** Mean ms per call: one warm-up call (compiles pipelines), then tinybench; one timed call if slow. */
async function time(quick: boolean, fn: () => Promise<unknown>): Promise<{ ms: number; note?: string }> {
  await fn();
  const t0 = performance.now();
  await fn();
  const once = performance.now() - t0;
  if (once > (quick ? 1000 : 4000)) return { ms: once, note: 'one timed call' };
  const bench = new Bench({ time: quick ? 300 : 2000, iterations: quick ? 2 : 4, warmup: false });
  bench.add('case', fn);
  await bench.run();
  const res = bench.tasks[0]!.result as { latency?: { mean: number; samples?: number[] }; error?: unknown };
  if (!res.latency) throw new Error(`benchmark failed: ${String(res.error)}`);
  return { ms: res.latency.mean };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  await modelBench({ json: args.includes('--json'), quick: args.includes('--quick') });
}
