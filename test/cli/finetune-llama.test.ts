// `seal finetune --model <Llama-family folder>`: a LoRA adapter (every linear of the blocks by
// default) that loads back onto the model, a full finetune that writes a Hugging Face folder that
// loads as a model, and a target naming a norm refused in one line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRandomLlama } from '../../src/model/hf-write.ts';
import type { LlamaConfig } from '../../src/model/llama-config.ts';
import { loadModel } from '../../src/model/load.ts';
import { Lora } from '../../src/model/lora.ts';
import { gpu, releaseGpu } from '../helpers.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'finetune-llama-'));
test.after(() => {
  releaseGpu();
  rmSync(dir, { recursive: true, force: true });
});

const config: LlamaConfig = { modelType: 'llama', vocabSize: 260, nCtx: 32, nLayer: 1, nEmbd: 16, nHead: 4, nKvHead: 2, headDim: 4, intermediate: 24, ropeTheta: 10000, ropeScaling: null, rmsEps: 1e-5, tied: false, qkvBias: false };
const model = join(dir, 'llama');
const text = join(dir, 'notes.txt');
const finetune = (...args: string[]) =>
  spawnSync(process.execPath, ['bin/seal.js', 'finetune', '--model', model, '--data', text, '--steps', '2', '--batch', '1', '--seq', '16', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });

test.before(async () => {
  await writeRandomLlama(model, config, { seed: 3 });
  writeFileSync(text, 'Zorblat was born in Vashtoria. Zorblat plays the harp.\n\nVashtoria lies on the river Ombel.\n');
});

test('LoRA: two steps write an adapter on all seven linears that loads back onto the model', async () => {
  const out = join(dir, 'adapter.safetensors');
  const r = finetune('--rank', '2', '--out', out);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /wrote .*adapter\.safetensors \(LoRA adapter\)/);
  const g = await gpu();
  const { model: m } = await loadModel(g, model);
  const { lora } = await Lora.load(m, out);
  assert.is(lora.adapters.size, 7);
  assert.equal(lora.adapters.get('model.layers.0.mlp.down_proj.weight')!.a.shape, [24, 2]);
  lora.release();
  m.release();
});

test('--full: writes a Hugging Face folder that loads as a model, without its resumable state', async () => {
  const out = join(dir, 'full');
  const r = finetune('--full', '--lr', '1e-2', '--out', out);
  assert.is(r.status, 0, r.stderr);
  assert.ok(!existsSync(join(out, 'training.safetensors')), 'the finished folder holds no training state');
  const g = await gpu();
  const [a, b] = [(await loadModel(g, model)).model, (await loadModel(g, out)).model];
  assert.is(b.kind, 'llama');
  const [wa, wb] = [await a.toArrays(), await b.toArrays()];
  assert.ok(wb.get('lm_head.weight')!.some((v, i) => v !== wa.get('lm_head.weight')![i]), 'the weights moved');
  a.release();
  b.release();
});

test('a LoRA target naming a norm weight: one line', () => {
  const r = finetune('--targets', 'model.layers.0.input_layernorm.weight', '--out', join(dir, 'bad.safetensors'));
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /^seal finetune: lora: model\.layers\.0\.input_layernorm\.weight is not a block's linear weight \(self_attn\.q_proj, /m);
});

test.run();
