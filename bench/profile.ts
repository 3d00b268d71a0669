// Where the GPU time goes, from GPU timestamps per dispatch (gpu.setProfiling), by kernel family:
// one SEAL iteration as the demo runs it (meta-gradient, lookahead, 4 passages), one pretraining
// step of the bundled configuration (width 128, 2 layers, 4 heads, batch 8 × 128) and one decode
// step (a 16-token prompt, one new token with the KV cache).
//
// Run: node --import tsx bench/profile.ts
import { readLines } from '../src/seal/run.ts';
import { dawnGpu } from '../src/io/dawn.ts';
import { generateTokens } from '../src/model/generate.ts';
import { GPT2 } from '../src/model/gpt2.ts';
import { loadModel } from '../src/model/load.ts';
import { DEFAULT_OPTIMIZE, Optimizer } from '../src/model/optimize.ts';
import { resolveConfig } from '../src/seal/config.ts';
import { SealTrainer } from '../src/seal/trainer.ts';
import { loadSquad } from '../src/tasks/squad.ts';
import { Rng } from '../src/util/random.ts';

const gpu = await dawnGpu();
if (!gpu.setProfiling(false)) throw new Error('this adapter has no timestamp queries');
/** A kernel family: the shader entry without tile constants, a matmul without its variant. */
const family = (label: string) => label.replace(/:WG=\d+/, '').replace(/ (subgroup|regs|tiled)-\S+( split\d+)?/, '');

async function profile(what: string, f: () => Promise<unknown>): Promise<void> {
  await f(); // compiles pipelines, fills the pool
  gpu.setProfiling(true);
  const t0 = performance.now();
  await f();
  const wall = performance.now() - t0;
  const entries = await gpu.profile();
  gpu.setProfiling(false);
  const by = new Map<string, { ms: number; n: number }>();
  for (const e of entries) {
    const f2 = by.get(family(e.label)) ?? { ms: 0, n: 0 };
    f2.ms += e.ms;
    f2.n++;
    by.set(family(e.label), f2);
  }
  const total = entries.reduce((s, e) => s + e.ms, 0);
  console.log(`\n${what}: wall ${wall.toFixed(0)} ms, ${entries.length} dispatches, GPU ${total.toFixed(0)} ms`);
  for (const [name, { ms, n }] of [...by].sort((a, b) => b[1].ms - a[1].ms)) console.log(`  ${name.padEnd(40)} ${ms.toFixed(1).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)} %  ${String(n).padStart(4)} dispatches`);
}

// The demo's SEAL iteration (validation every 5th iteration is profiled as its own case).
const c = resolveConfig({ lookahead: 6, validationCount: 16 });
const { model, tokenizer } = await loadModel(gpu, c.model);
const data = { train: (await loadSquad(c.data.train)).slice(0, 8), validation: await loadSquad(c.data.validation), general: await readLines(c.data.general) };
const trainer = await SealTrainer.create(model, tokenizer, c, data);
await profile('demo SEAL iteration (meta-gradient, 4 passages, lookahead)', () => trainer.step());
await profile('the validation monitoring of every 5th iteration (16 passages, forgetting on 4)', () => trainer.evaluateValidation());
trainer.release();
model.release();

const config = { vocabSize: 257, nCtx: 128, nLayer: 2, nHead: 4, nEmbd: 128 };
const m = GPT2.init(gpu, config, 1);
const r = new Rng(2);
const ids = (n: number) => Uint32Array.from({ length: n }, () => r.int(config.vocabSize));
const [tokens, targets] = [gpu.tensor(ids(8 * 128), [8, 128]), gpu.tensor(ids(8 * 128), [8, 128])];
const opt = new Optimizer(m, DEFAULT_OPTIMIZE);
await profile('pretraining step, bundled config, batch 8 × 128', () => opt.update(tokens, targets));
const prompt = [Array.from(ids(16))];
await profile('decode: a 16-token prompt, 1 new token, KV cache', () => generateTokens(m, prompt, { maxNew: 1, cache: true }));
gpu.destroy();
