// Tokens/s of a Llama-family folder (e.g. the SmolLM2-135M-shaped random checkpoint) against
// GPT-2 small's 12 layers with vocabulary 16384 (the README's baseline), interleaved in one run, so
// the ratio holds on a shared machine:
//   node --import tsx scripts/bench-llama.ts runs/smollm2
import { dawnGpu } from '../src/io/dawn.ts';
import { GPT2_SMALL } from '../src/model/config.ts';
import { GPT2 } from '../src/model/gpt2.ts';
import { generateTokens } from '../src/model/generate.ts';
import { loadModel } from '../src/model/load.ts';
import type { LanguageModel } from '../src/model/lm.ts';
import { Rng } from '../src/util/random.ts';

const gpu = await dawnGpu();
console.log(`adapter: ${gpu.summary.description || gpu.summary.device}`);
const t0 = performance.now();
const { model: smol } = await loadModel(gpu, process.argv[2] ?? 'runs/smollm2');
console.log(`loaded SmolLM2 shape in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const gpt2 = GPT2.init(gpu, { ...GPT2_SMALL, vocabSize: 16384 }, 1);
const [B, T] = [1, 64];
const r = new Rng(2);
async function fwd(m: LanguageModel): Promise<number> {
  const tokens = gpu.tensor(Uint32Array.from({ length: B * T }, () => r.int(m.config.vocabSize)), [B, T]);
  const t = performance.now();
  const pass = m.forward(tokens);
  await gpu.sync();
  const ms = performance.now() - t;
  pass.release();
  tokens.release();
  return ms;
}
async function train(m: LanguageModel): Promise<number> {
  const ids = () => gpu.tensor(Uint32Array.from({ length: B * T }, () => r.int(m.config.vocabSize)), [B, T]);
  const [tokens, targets] = [ids(), ids()];
  const grads = m.zerosLike();
  const t = performance.now();
  const pass = m.forward(tokens, targets);
  pass.backward(grads);
  await gpu.sync();
  const ms = performance.now() - t;
  pass.release();
  for (const x of [tokens, targets, ...grads.values()]) x.release();
  return ms;
}
async function gen(m: LanguageModel): Promise<number> {
  const prompt = Array.from({ length: 16 }, () => r.int(m.config.vocabSize));
  const t = performance.now();
  await generateTokens(m, [prompt], { maxNew: 16 });
  return performance.now() - t;
}
const models: [string, LanguageModel][] = [['smollm2-135m shape', smol], ['gpt2-small layers V16384', gpt2]];
for (const [, m] of models) await fwd(m); // warm-up: pipelines
const res: Record<string, { fwd: number[]; train: number[]; gen: number[] }> = {};
for (let rep = 0; rep < 3; rep++) {
  for (const [name, m] of models) {
    res[name] ??= { fwd: [], train: [], gen: [] };
    res[name].fwd.push(await fwd(m));
  }
}
for (const [name, m] of models) {
  res[name]!.train.push(await train(m));
  res[name]!.gen.push(await gen(m));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [name] of models) {
  const x = res[name]!;
  console.log(`${name}: forward ${B}×${T}: ${((B * T) / med(x.fwd) * 1000).toFixed(1)} tok/s (median of ${x.fwd.length}: ${x.fwd.map((v) => v.toFixed(0)).join(', ')} ms); forward+backward ${((B * T) / x.train[0]! * 1000).toFixed(1)} tok/s; generate 1×(16+16) KV cache ${(16 / x.gen[0]! * 1000).toFixed(2)} tok/s`);
}
const ratio = med(res[models[1]![0]]!.fwd) / med(res[models[0]![0]]!.fwd);
console.log(`forward speed ratio smollm2 / gpt2-small-layers: ${ratio.toFixed(2)} (same run, interleaved)`);
smol.release();
gpt2.release();
gpu.destroy();
