// Interleaved timings, so that load drifting on a shared machine hits every model alike: GPT-2 small
// with f32 weights, with f16 weights, and the earlier stand-in (its layers, vocabulary 16384, f32),
// round-robin, each round a forward 1×64 and a KV-cache generation 1×(16+8) per model; per-round
// time ratios and their medians. Run: node --import tsx bench/interleave.ts [rounds]
import { dawnGpu } from '../src/io/dawn.ts';
import { GPT2_SMALL } from '../src/model/config.ts';
import { generateTokens } from '../src/model/generate.ts';
import { GPT2 } from '../src/model/gpt2.ts';
import { Rng } from '../src/util/random.ts';
const gpu = await dawnGpu();
const models = { f32: GPT2.init(gpu, GPT2_SMALL, 1, 'f32'), f16: GPT2.init(gpu, GPT2_SMALL, 1, 'f16'), standin: GPT2.init(gpu, { ...GPT2_SMALL, vocabSize: 16384 }, 1, 'f32') };
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
for (const [k, v] of Object.entries(times)) console.log(k, 'median ms', med(v).toFixed(0), 'all', v.map((x) => x.toFixed(0)).join(' '));
for (const what of ['forward', 'generate']) {
  console.log(`${what}: f16/f32 time ratio (median of per-round ratios)`, med(times[`f16 ${what}`]!.map((x, i) => x / times[`f32 ${what}`]![i]!)).toFixed(2));
  console.log(`${what}: gpt2-small f32 / stand-in time ratio`, med(times[`f32 ${what}`]!.map((x, i) => x / times[`standin ${what}`]![i]!)).toFixed(2));
}
gpu.destroy();
