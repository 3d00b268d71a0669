// Hugging Face Llama-family folders through loadModel (the `--model <dir>` entry point): single and
// sharded checkpoints, the tokenizer from tokenizer.json, the weights against the CPU reference, and
// the named errors, each leaving no GPU tensor behind.
import { rejects } from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteLevelTokenizerJson } from '../../src/io/hf-tokenizer.ts';
import { withSafetensors } from '../../src/io/safetensors.ts';
import { writeRandomLlama } from '../../src/model/hf-write.ts';
import { Llama } from '../../src/model/llama.ts';
import type { LlamaConfig } from '../../src/model/llama-config.ts';
import { loadModel } from '../../src/model/load.ts';
import type { LanguageModel } from '../../src/model/lm.ts';
import { resolveMask } from '../../src/model/mask.ts';
import * as ref from '../../src/reference/llama.ts';
import { dawnGpu, optionsFromEnv } from '../../src/io/dawn.ts';
import { close, gpu, releaseGpu } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'hf-llama-test-'));
test.after(() => {
  rmSync(root, { recursive: true, force: true });
  releaseGpu();
});
let dirNo = 0;

const config: LlamaConfig = {
  modelType: 'llama',
  vocabSize: 300,
  nCtx: 32,
  nLayer: 2,
  nEmbd: 16,
  nHead: 4,
  nKvHead: 2,
  headDim: 4,
  intermediate: 24,
  ropeTheta: 100000,
  ropeScaling: null,
  rmsEps: 1e-5,
  tied: false,
  qkvBias: false,
};

async function folder(c: LlamaConfig = config, shards = 1): Promise<string> {
  const dir = join(root, `m${dirNo++}`);
  await writeRandomLlama(dir, c, { seed: dirNo, shards, std: 0.2 });
  return dir;
}

/** The loaded model's logits on tokens against the reference's on the given weights. */
async function matchesReference(model: LanguageModel, c: LlamaConfig, weights: ref.Params, tokens: number[], rel = 1e-4): Promise<void> {
  const g = model.gpu;
  const tt = g.tensor(Uint32Array.from(tokens), [1, tokens.length]);
  const pass = model.forward(tt);
  const want = ref.forward(c, weights, tokens, 1, tokens.length);
  close(await g.read(pass.logits), want.logits, rel, rel * Math.max(...want.logits.map(Math.abs)), 'logits');
  pass.release();
  tt.release();
}

const editJson = (path: string, edit: (j: Record<string, unknown>) => void) => {
  const j = JSON.parse(readFileSync(path, 'utf8'));
  edit(j);
  writeFileSync(path, JSON.stringify(j));
};

test('a sharded folder loads: weights as in the files, logits as the reference computes them, its own tokenizer', async () => {
  const g = await gpu();
  const dir = await folder(config, 3);
  const { model, tokenizer, format } = await loadModel(g, dir);
  assert.ok(model instanceof Llama);
  assert.is(format, 'huggingface');
  assert.is(tokenizer.vocabSize, config.vocabSize);
  const text = 'the quick brown fox, ünïcödé';
  const ids = tokenizer.encode(text);
  assert.ok(ids.length < new TextEncoder().encode(text).length, 'the merges apply');
  assert.is(tokenizer.decode(ids), text);
  assert.is(tokenizer.eot, 0);

  const weights = new Map<string, Float64Array>();
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map as Record<string, string>;
  for (const [name, file] of Object.entries(index)) weights.set(name, Float64Array.from(await withSafetensors(join(dir, file), (f) => f.get(name))));
  await matchesReference(model, config, weights, ids.slice(0, 8));

  const shapes = new Map([...model.params].map(([k, t]) => [k, t.shape]));
  const mask = resolveMask(shapes, { tensors: ['model.layers.*.mlp.down_proj.weight'] });
  assert.equal(mask.entries.map((e) => e.name), ['model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.down_proj.weight']);
  assert.is(mask.paramDim, 2 * config.nEmbd * config.intermediate);
  model.release();
  assert.is(g.liveTensors, 0);
});

test('named errors, nothing left on the GPU: a model too large for the adapter, missing shard, shape against config.json, unknown model_type, tokenizer vocabulary, a corrupt late tensor', async () => {
  const g = await gpu();
  const cramped = await dawnGpu({ ...optionsFromEnv(), memory: 10_000 });
  try {
    await rejects(loadModel(cramped, await folder()), /m\d+: the model needs about \d+ MiB of GPU memory \(weights \d+ MiB, activations \d+ MiB\) but 0 MiB are available/);
    assert.is(cramped.liveTensors, 0);
  } finally {
    cramped.destroy();
  }
  const sharded = await folder(config, 2);
  unlinkSync(join(sharded, 'model-00002-of-00002.safetensors'));
  await rejects(loadModel(g, sharded), /missing shard .*model-00002-of-00002\.safetensors \(listed in the index/);

  const wrongShape = await folder();
  editJson(join(wrongShape, 'config.json'), (j) => (j.intermediate_size = 20));
  assert.is(g.liveTensors, 0, `left behind: ${g.liveLabels().join(', ')}`);
  await rejects(loadModel(g, wrongShape), /tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' is \[24×16\], but config\.json implies \[20×16\]/);

  const unknown = await folder();
  editJson(join(unknown, 'config.json'), (j) => (j.model_type = 'mistral'));
  await rejects(loadModel(g, unknown), /model_type 'mistral' is not supported \(supported: gpt2, llama, qwen2\)/);

  const badTok = await folder();
  const big = byteLevelTokenizerJson(config.vocabSize + 5);
  writeFileSync(join(badTok, 'tokenizer.json'), JSON.stringify(big.json));
  await rejects(loadModel(g, badTok), /tokenizer has 305 ids but the model's vocabulary is 300/);
  assert.is(g.liveTensors, 0, `left behind: ${g.liveLabels().join(', ')}`);

  const scaling = await folder();
  editJson(join(scaling, 'config.json'), (j) => (j.rope_scaling = { rope_type: 'yarn', factor: 4 }));
  await rejects(loadModel(g, scaling), /rope_scaling type 'yarn' is not supported \(supported: default, linear, llama3\)/);

  // A NaN in the last tensor of the last shard: found only while loading, after the rest is uploaded.
  const corrupt = await folder(config, 2);
  const last = join(corrupt, 'model-00002-of-00002.safetensors');
  const bytes = readFileSync(last);
  bytes.writeFloatLE(Number.NaN, bytes.length - 4);
  writeFileSync(last, bytes);
  await rejects(loadModel(g, corrupt), /holds NaN/);
  assert.is(g.liveTensors, 0, `left behind: ${g.liveLabels().join(', ')}`);
});

test('qwen2 folder with biases and a tied head loads and matches the reference', async () => {
  const g = await gpu();
  const c: LlamaConfig = { ...config, modelType: 'qwen2', qkvBias: true, tied: true, nKvHead: 1 };
  const dir = await folder(c);
  const { model } = await loadModel(g, dir);
  assert.is(model.kind, 'qwen2');
  const weights = new Map([...(await model.toArrays())].map(([k, v]) => [k, Float64Array.from(v)]));
  await matchesReference(model, c, weights, [5, 77, 299, 0, 12]);
  model.release();
  // Stored f16: the file's weights rounded, so the logits move by the rounding (≤ 2⁻¹¹ relative per weight).
  const { model: half } = await loadModel(g, dir, { dtype: 'f16' });
  assert.is(half.dtype, 'f16');
  await matchesReference(half, c, weights, [5, 77, 299, 0, 12], 2e-2);
  half.release();
});

/** Rewrites a safetensors file's F32 tensors as BF16 (their top halves), as bf16 checkpoints are saved. */
function toBf16(path: string): void {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const f32 = buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    const out = Buffer.alloc(f32.length / 2);
    for (let i = 0; i < out.length / 2; i++) out.writeUInt16LE(f32.readUInt32LE(4 * i) >>> 16, 2 * i);
    header[name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + out.length] };
    offset += out.length;
    chunks.push(out);
  }
  const json = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...chunks]));
}

test('a bf16 checkpoint loads as f32 and matches the reference on the same (bf16) weights', async () => {
  const g = await gpu();
  const dir = await folder();
  toBf16(join(dir, 'model.safetensors'));
  const weights = await withSafetensors(join(dir, 'model.safetensors'), async (f) => {
    assert.ok([...f.tensors.values()].every((t) => t.dtype === 'BF16'));
    return new Map(await Promise.all(f.names.map(async (n) => [n, Float64Array.from(await f.get(n))] as const)));
  });
  const { model } = await loadModel(g, dir);
  await matchesReference(model, config, weights, [3, 1, 4, 1, 5, 9]);
  model.release();
});

test.run();
