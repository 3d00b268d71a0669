// The inner loop of one ReST-EM round (text demo's settings: 4 rl-train passages × 4 self-edits,
// LoRA rank 8, 10 steps at lr 1e-3, on data/base-text.safetensors), one self-edit at a time
// (batch 1: the sequential path) against batched (all 16 in one stacked adapter), interleaved in one
// process. The self-edits are the base model's own samples (one fixed draw), as the demo's round 1.
//
// Run: node --import tsx bench/inner-batch.ts [rounds] [batch]
import { dawnGpu } from '../src/io/dawn.ts';
import { gpt2Only, loadModel } from '../src/model/load.ts';
import { DEFAULT_LORA, Lora } from '../src/model/lora.ts';
import { DEFAULT_INNER, InnerLoop } from '../src/seal/text/inner.ts';
import { sampleSelfEdits } from '../src/seal/text/selfedit.ts';
import { DEFAULT_OUTER } from '../src/seal/text/outer.ts';
import { loadSquad } from '../src/tasks/squad.ts';

const rounds = Number(process.argv[2] ?? 3);
const big = Number(process.argv[3] ?? 16);
const gpu = await dawnGpu();
const loaded = await loadModel(gpu, 'data/base-text.safetensors');
const [model, tok] = [gpt2Only(loaded.model, 'bench'), loaded.tokenizer];
const passages = (await loadSquad('data/knowledge/rl-train.json')).slice(0, 4);
const lora = { ...DEFAULT_LORA, rank: 8, alpha: 16 };
const generator = Lora.create(model, lora, 1);
const merged = generator.merged(model);
const edits = await sampleSelfEdits(model, tok, passages, { ...DEFAULT_OUTER.sampling, samples: 4, maxNew: 128, temperature: 1 }, merged);
merged.forEach((t) => t.release());
generator.release();
console.log(`${edits.length} self-edits, ${edits.map((e) => e.text.length).join('/')} characters`);

const sides = [1, big].map((batch) => ({ batch, inner: new InnerLoop(model, tok, passages, { ...DEFAULT_INNER, steps: 10, lr: 1e-3, lora, batch }), ms: [] as number[], rewards: [] as number[] }));
for (const s of sides) s.rewards = await s.inner.rewards(edits); // warm-up: pipelines, base scores
for (let r = 0; r < rounds; r++) {
  for (const s of sides) {
    const t0 = performance.now();
    await s.inner.rewards(edits);
    s.ms.push(performance.now() - t0);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const s of sides) console.log(`batch ${s.batch}: ${s.ms.map((m) => m.toFixed(0)).join(', ')} ms (median ${median(s.ms).toFixed(0)})`);
console.log(`sequential / batched (medians): ${(median(sides[0]!.ms) / median(sides[1]!.ms)).toFixed(2)}×`);
console.log(`max |reward difference|: ${Math.max(...sides[0]!.rewards.map((r, i) => Math.abs(r - sides[1]!.rewards[i]!))).toExponential(2)}`);
for (const s of sides) s.inner.release();
model.release();
gpu.destroy();
