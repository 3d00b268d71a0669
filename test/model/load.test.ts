// loadModel: our checkpoints and Hugging Face GPT-2 files, detected by content, with their
// tokenizers; named errors for other files and for a model too large for the adapter.
import { rejects } from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { saveCheckpoint } from '../../src/model/checkpoint.ts';
import { GPT2_SMALL, paramSpecs, type GPT2Config } from '../../src/model/config.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { loadModel } from '../../src/model/load.ts';
import { dawnGpu, optionsFromEnv } from '../../src/io/dawn.ts';
import { checkFits, estimateMemory, INFERENCE, paramCountOf } from '../../src/model/memory.ts';
import { SMOLLM2_135M } from '../../src/model/hf-write.ts';
import * as ref from '../../src/reference/gpt2.ts';
import { UserError } from '../../src/util/errors.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'load-test-'));
test.after(() => {
  rmSync(root, { recursive: true, force: true });
  releaseGpu();
});
let dirNo = 0;

/** A GPT-2 in HF's layout: `transformer.` names, the attention-mask buffers, config.json beside. */
async function hfModel(config: GPT2Config, seed: number): Promise<{ dir: string; weights: Map<string, Float32Array> }> {
  const r = rng(seed);
  const weights = new Map(paramSpecs(config).map((s) => [s.name, r.uniformArray(s.shape.reduce((a, b) => a * b, 1), -0.5, 0.5)]));
  const tensors: [string, TensorToWrite][] = paramSpecs(config).map((s) => [`transformer.${s.name}`, { shape: s.shape, data: weights.get(s.name)! }]);
  const T = config.nCtx;
  for (let l = 0; l < config.nLayer; l++) tensors.push([`transformer.h.${l}.attn.bias`, { shape: [1, 1, T, T], data: new Float32Array(T * T) }]);
  const dir = join(root, `hf${dirNo++}`);
  mkdirSync(dir);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const { vocabSize, nCtx, nLayer, nHead, nEmbd } = config;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: vocabSize, n_positions: nCtx, n_layer: nLayer, n_head: nHead, n_embd: nEmbd }));
  return { dir, weights };
}

const TINY: GPT2Config = { vocabSize: 257, nCtx: 12, nLayer: 2, nHead: 3, nEmbd: 18 };

test('a Hugging Face GPT-2 file loads with the tokenizer its vocabulary implies, and its logits match the CPU reference', async () => {
  const g = await gpu();
  const { dir, weights } = await hfModel(TINY, 1);
  for (const path of [dir, join(dir, 'model.safetensors')]) {
    const { model, tokenizer, format } = await loadModel(g, path);
    assert.is(format, 'huggingface');
    assert.is(tokenizer.name, 'byte');
    assert.equal(model.config, TINY);
    const [B, T] = [2, 7];
    const ids = Uint32Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % TINY.vocabSize);
    const tokens = g.tensor(ids, [B, T]);
    const pass = model.forward(tokens);
    const want = ref.forward(TINY, new Map([...weights].map(([n, a]) => [n, Float64Array.from(a)])), ids, new Uint32Array(B * T).fill(ref.IGNORE), B, T);
    close(await g.read(pass.logits), want.logits, 1e-4, 1e-4, 'logits');
    pass.release();
    tokens.release();
    model.release();
  }
});

test('our checkpoint loads with its own tokenizer and the same weights', async () => {
  const g = await gpu();
  const saved = GPT2.init(g, TINY, 2);
  const path = join(root, 'ours.safetensors');
  await saveCheckpoint(path, saved, { tokenizer: 'byte' });
  const { model, tokenizer, format } = await loadModel(g, path);
  assert.is(format, 'seal');
  assert.is(tokenizer.name, 'byte');
  assert.equal(model.config, TINY);
  const [a, b] = [await saved.toArrays(), await model.toArrays()];
  for (const [n, x] of a) sameBits(b.get(n)!, x, n);
  saved.release();
  model.release();
});

test('other files, missing files and unfit tokenizers are named errors', async () => {
  const g = await gpu();
  const other = join(root, 'other.safetensors');
  await writeSafetensors(other, [['encoder.weight', { shape: [2, 2], data: new Float32Array(4) }]], { format: 'seal-webgpu/policy' });
  await rejects(loadModel(g, other), /other\.safetensors: not a model file we can load: neither a seal-webgpu checkpoint \(metadata format 'seal-webgpu\/gpt2'; this file's is 'seal-webgpu\/policy'\) nor a Hugging Face GPT-2 model\.safetensors \(no wte\.weight; tensors: encoder\.weight\)/);
  await rejects(loadModel(g, join(root, 'nowhere')), /nowhere: cannot open the model file \(ENOENT\)/);
  const notSafetensors = join(root, 'junk.bin');
  writeFileSync(notSafetensors, 'not a safetensors file at all');
  await rejects(loadModel(g, notSafetensors), /junk\.bin/);
  const { dir } = await hfModel({ ...TINY, vocabSize: 11 }, 3);
  await rejects(loadModel(g, dir), /a vocabulary of 11 matches no tokenizer we know .*; pass the tokenizer option/);
  const live = g.liveTensors;
  await rejects(loadModel(g, dir, { tokenizer: 'byte' }), /the byte tokenizer has 257 ids but the model's vocabulary is 11/);
  assert.is(g.liveTensors, live, 'a refused model is released');
});

test('a non-finite weight is refused at load, naming the tensor, in either format; nothing stays live', async () => {
  const g = await gpu();
  const live = g.liveTensors;
  const shapeOf = new Map(paramSpecs(TINY).map((s) => [s.name, s.shape]));
  const { dir, weights } = await hfModel(TINY, 4);
  const hfTensors = [...weights].map(([n, data]): [string, TensorToWrite] => [`transformer.${n}`, { shape: shapeOf.get(n)!, data }]);
  weights.get('h.1.attn.c_proj.weight')![5] = -Infinity;
  await writeSafetensors(join(dir, 'model.safetensors'), hfTensors, { format: 'pt' });
  await rejects(loadModel(g, dir), (e: Error) => e instanceof UserError && /tensor 'transformer\.h\.1\.attn\.c_proj\.weight' holds -Infinity at index 5/.test(e.message));

  const model = GPT2.init(g, TINY, 5);
  const arrays = await model.toArrays();
  model.release();
  arrays.get('h.0.mlp.c_fc.bias')![3] = NaN;
  const ours = join(root, 'nan.safetensors');
  await writeSafetensors(ours, [...arrays].map(([n, data]) => [n, { shape: shapeOf.get(n)!, data }]), { format: 'seal-webgpu/gpt2', config: JSON.stringify(TINY), tokenizer: 'byte' });
  await rejects(loadModel(g, ours), (e: Error) => e instanceof UserError && /nan\.safetensors: tensor 'h\.0\.mlp\.c_fc\.bias' holds NaN at index 3/.test(e.message));
  assert.is(g.liveTensors, live, 'the tensors read before the bad one are released');
});

test('a model too large for the adapter is refused before anything is on the GPU, naming needed and available bytes', async () => {
  type Fits = Pick<Gpu, 'limits' | 'summary' | 'availableMemory'>;
  const lavapipe = (availableMemory: number | null, maxBufferSize = 2 ** 32 - 1) => ({ limits: { maxBufferSize } as GPUSupportedLimits, summary: { description: 'llvmpipe' }, availableMemory }) as Fits;
  // GPT-2 small for inference: 498 MB of weights, and the estimate grows with training.
  const infer = estimateMemory(GPT2_SMALL, INFERENCE);
  assert.is(infer.weights, 4 * 124_439_808);
  const adam = estimateMemory(GPT2_SMALL, { ...INFERENCE, train: 'adam' });
  assert.is(adam.grads, infer.weights);
  assert.is(adam.optimizer, 2 * infer.weights);
  assert.ok(adam.activations > infer.activations);
  // A Llama-family shape: SmolLM2-135M's 134.5 M parameters; f16 halves every matrix (all but the norms).
  const smol = estimateMemory(SMOLLM2_135M, INFERENCE);
  assert.is(paramCountOf(SMOLLM2_135M), 134_515_008);
  assert.is(smol.weights, 4 * 134_515_008);
  assert.is(estimateMemory(SMOLLM2_135M, INFERENCE, 'f16').weights, 2 * 134_515_008 + 2 * (2 * 30 + 1) * 576);
  assert.throws(
    () => checkFits(lavapipe(400 * 2 ** 20), 'gpt2', GPT2_SMALL, INFERENCE, 'f32'),
    /gpt2: the model needs about \d+ MiB of GPU memory \(weights 475 MiB, activations \d+ MiB\) but 400 MiB are available on llvmpipe; use a smaller model or batch, or --dtype f16/,
  );
  checkFits(lavapipe(2 ** 31), 'gpt2', GPT2_SMALL, INFERENCE, 'f32');
  checkFits(lavapipe(null), 'gpt2', GPT2_SMALL, INFERENCE, 'f32'); // unknown memory: not checked
  assert.throws(() => checkFits(lavapipe(null, 257 * 18 * 4 - 4), 'f', TINY, INFERENCE, 'f32'), /f: tensor 'wte\.weight' \[257×18\] needs 18504 bytes as f32, over this adapter's maxBufferSize of 18500 bytes/);
  // Through loadModel, on a Gpu told it has 10 000 bytes: nothing is left on the GPU.
  const cramped = await dawnGpu({ ...optionsFromEnv(), memory: 10_000 });
  try {
    const { dir } = await hfModel(TINY, 4);
    await rejects(loadModel(cramped, dir), (e: Error) => e instanceof UserError && /model\.safetensors: the model needs about \d+ MiB of GPU memory .* but 0 MiB are available/.test(e.message));
    assert.is(cramped.liveTensors, 0);
  } finally {
    cramped.destroy();
  }
});

test.run();
