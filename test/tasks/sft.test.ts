// `seal finetune`'s loop: LoRA and full finetuning lower the loss; a run stopped at a checkpoint and
// resumed ends with the same bits as an uninterrupted one; the base file's model is not touched by LoRA.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { byteTokenizer } from '../../src/io/tokenizer.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { writeRandomLlama } from '../../src/model/hf-write.ts';
import type { LlamaConfig } from '../../src/model/llama-config.ts';
import { loadModel } from '../../src/model/load.ts';
import { Lora } from '../../src/model/lora.ts';
import { DEFAULT_OPTIMIZE } from '../../src/model/optimize.ts';
import { finetuneDocuments, sft, type SftOptions } from '../../src/tasks/sft.ts';
import { gpu, releaseGpu, sameBits } from '../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'sft-test-'));
test.after(() => {
  releaseGpu();
  rmSync(dir, { recursive: true, force: true });
});

const config = { vocabSize: 257, nCtx: 16, nLayer: 1, nHead: 2, nEmbd: 16 };
const textFile = join(dir, 'facts.txt');
writeFileSync(textFile, 'Zorblat was born in Vashtoria.\nZorblat plays the harp.\n\n\nVashtoria lies on the river Ombel.\n');

async function run(scope: SftOptions['scope'], out: string, steps: number, resume = false) {
  const g = await gpu();
  const model = GPT2.init(g, config, 3);
  const docs = await finetuneDocuments(textFile);
  const r = await sft(model, byteTokenizer, {
    docs, out, scope, resume, batch: 2, seq: 12, seed: 5, checkpointEvery: 4,
    optimize: { ...DEFAULT_OPTIMIZE, lr: 1e-2, warmup: 2, totalSteps: 10 },
    onStep: (s) => {
      if (s.step === steps) throw new Error('stop');
    },
  }).catch((e: Error) => (e.message === 'stop' ? null : Promise.reject(e)));
  return { g, model, docs, losses: r?.losses };
}

test('a text file splits into paragraphs; LoRA training lowers the loss and leaves the base alone', async () => {
  const { g, model, docs, losses } = await run({ targets: ['h.*.mlp.c_fc.weight', 'h.*.attn.c_attn.weight'], rank: 2, alpha: 4 }, join(dir, 'lora.safetensors'), 0);
  assert.equal(docs, ['Zorblat was born in Vashtoria.\nZorblat plays the harp.', 'Vashtoria lies on the river Ombel.']);
  assert.ok(losses!.at(-1)! < losses![0]!, `loss ${losses![0]} → ${losses!.at(-1)}`);
  const fresh = GPT2.init(g, config, 3);
  for (const [n, a] of await fresh.toArrays()) sameBits((await model.toArrays()).get(n)!, a, n);
  fresh.release();
  model.release();
});

for (const scope of ['lora', 'full'] as const) {
  test(`${scope}: stopped after a checkpoint and resumed, the result has the same bits`, async () => {
    const spec = scope === 'full' ? 'full' : { targets: ['h.0.mlp.c_proj.weight'], rank: 2, alpha: 2 };
    const whole = join(dir, `${scope}-whole.safetensors`);
    const parts = join(dir, `${scope}-parts.safetensors`);
    (await run(spec, whole, 0)).model.release();
    (await run(spec, parts, 6)).model.release(); // killed after step 6; the last checkpoint is step 4
    const { g, model } = await run(spec, parts, 0, true);
    model.release();
    const read = async (p: string) => {
      if (scope === 'full') {
        const ck = await loadCheckpoint(g, p);
        const a = await ck.model.toArrays();
        ck.model.release();
        return a;
      }
      const base = GPT2.init(g, config, 3);
      const { lora } = await Lora.load(base, p);
      const ts = lora.tensors();
      const a = new Map(await Promise.all([...ts].map(async ([n, t]) => [n, (await g.read(t)) as Float32Array] as const)));
      lora.release();
      base.release();
      return a;
    };
    const [a, b] = [await read(whole), await read(parts)];
    for (const [n, x] of a) sameBits(b.get(n)!, x, n);
  });
}

// The Llama family: GQA, an untied head; a full finetune writes a Hugging Face folder.
const llama: LlamaConfig = { modelType: 'llama', vocabSize: 260, nCtx: 16, nLayer: 1, nEmbd: 16, nHead: 4, nKvHead: 2, headDim: 4, intermediate: 24, ropeTheta: 10000, ropeScaling: null, rmsEps: 1e-5, tied: false, qkvBias: false };
const source = join(dir, 'llama');

async function runLlama(scope: SftOptions['scope'], out: string, steps: number, resume = false) {
  const g = await gpu();
  if (!existsSync(source)) await writeRandomLlama(source, llama, { seed: 3 });
  const { model, tokenizer } = await loadModel(g, source);
  await sft(model, tokenizer, {
    docs: await finetuneDocuments(textFile), out, scope, source, resume, batch: 2, seq: 12, seed: 5, checkpointEvery: 4,
    optimize: { ...DEFAULT_OPTIMIZE, lr: 1e-2, warmup: 2, totalSteps: 10 },
    onStep: (s) => {
      if (s.step === steps) throw new Error('stop');
    },
  }).catch((e: Error) => (e.message === 'stop' ? null : Promise.reject(e)));
  return model;
}

for (const scope of ['lora', 'full'] as const) {
  test(`llama, ${scope}: stopped after a checkpoint and resumed, the result has the same bits`, async () => {
    const spec = scope === 'full' ? 'full' : { targets: ['model.layers.0.self_attn.v_proj.weight', 'model.layers.0.mlp.up_proj.weight'], rank: 2, alpha: 2 };
    const [whole, parts] = [join(dir, `llama-${scope}-whole`), join(dir, `llama-${scope}-parts`)];
    (await runLlama(spec, whole, 0)).release();
    (await runLlama(spec, parts, 6)).release(); // killed after step 6; the last checkpoint is step 4
    const model = await runLlama(spec, parts, 0, true);
    const g = model.gpu;
    const read = async (p: string) => {
      if (scope === 'full') {
        const m = (await loadModel(g, p)).model;
        const a = await m.toArrays();
        m.release();
        return a;
      }
      const { lora } = await Lora.load(model, p);
      const a = new Map(await Promise.all([...lora.tensors()].map(async ([n, t]) => [n, (await g.read(t)) as Float32Array] as const)));
      lora.release();
      return a;
    };
    const [a, b] = [await read(whole), await read(parts)];
    assert.is(a.size, scope === 'full' ? model.params.size : 4);
    for (const [n, x] of a) sameBits(b.get(n)!, x, n);
    model.release();
  });
}

test.run();
