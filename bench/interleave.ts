// Interleaved timings, so that load drifting on a shared machine hits every model alike: GPT-2 small
// and SmolLM2-135M's shape, each with f32 and with f16 weights, and the earlier stand-in (GPT-2
// small's layers, vocabulary 16384, f32), round-robin, each round a forward 1×64 and a KV-cache
// generation 1×(16+8) per model; per-round time ratios and their medians.
// Run: node --import tsx bench/interleave.ts [rounds]
import { dawnGpu } from '../src/io/dawn.ts';
import { GPT2_SMALL } from '../src/model/config.ts';
import { generateTokens } from '../src/model/generate.ts';
import { GPT2 } from '../src/model/gpt2.ts';
import { SMOLLM2_135M } from '../src/model/hf-write.ts';
import { Llama } from '../src/model/llama.ts';
import type { LanguageModel } from '../src/model/lm.ts';
import { Rng } from '../src/util/random.ts';
const gpu = await dawnGpu();
console.log(`adapter: ${gpu.summary.description || gpu.summary.device}`);
const models: Record<string, LanguageModel> = {
  'gpt2-small f32': GPT2.init(gpu, GPT2_SMALL, 1, 'f32'),
  'gpt2-small f16': GPT2.init(gpu, GPT2_SMALL, 1, 'f16'),
  standin: GPT2.init(gpu, { ...GPT2_SMALL, vocabSize: 16384 }, 1, 'f32'),
  'smollm2 f32': Llama.init(gpu, SMOLLM2_135M, 1, 'f32'),
  'smollm2 f16': Llama.init(gpu, SMOLLM2_135M, 1, 'f16'),
};
const r = new Rng(2);
const ids = Uint32Array.from({ length: 64 }, () => r.int(16384));
const tokens = gpu.tensor(ids, [1, 64]);
const prompt = [Array.from(ids.slice(0, 16))];
const times: Record<string, number[]> = {};
const rounds = Number(process.argv[2] ?? 4);
for (let round = 0; round <= rounds; round++) {
  for (const [name, m] of Object.entries(models)) {
    let t0 = performance.now();
    const pass = m.forward(tokens);
    await gpu.sync();
    pass.release();
    const fwd = performance.now() - t0;
    t0 = performance.now();
    await generateTokens(m, prompt, { maxNew: 8 });
    const gen = performance.now() - t0;
    if (round === 0) continue; // warm-up
    (times[`${name} forward`] ??= []).push(fwd);
    (times[`${name} generate`] ??= []).push(gen);
    console.log(round, name, fwd.toFixed(0), gen.toFixed(0));
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [k, v] of Object.entries(times)) console.log(`${k}: median ${med(v).toFixed(0)} ms (${((k.endsWith('forward') ? 64 : 8) / med(v) * 1000).toFixed(2)} tok/s), all ${v.map((x) => x.toFixed(0)).join(' ')}`);
const ratio = (what: string, a: string, b: string) => console.log(`${what}: ${a} / ${b} time ratio (median of per-round ratios)`, med(times[`${a} ${what}`]!.map((x, i) => x / times[`${b} ${what}`]![i]!)).toFixed(2));
for (const what of ['forward', 'generate']) {
  ratio(what, 'gpt2-small f16', 'gpt2-small f32');
  ratio(what, 'smollm2 f16', 'smollm2 f32');
  ratio(what, 'gpt2-small f32', 'standin');
  ratio(what, 'smollm2 f32', 'standin');
}
gpu.destroy();
