import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT2_TENSOR_NAMES, loadGpt2Weights, ourName } from '../../src/model/hf-import.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { close, rng } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'hf-import-test-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
let dirNo = 0;

// A tiny GPT-2 written in exactly HF's names and layout (spelled out here, not taken from the code under test).
const L = 2, H = 2, C = 8, V = 11, T = 16;
const TINY = { vocabSize: V, nCtx: T, nLayer: L, nHead: H, nEmbd: C };

function hfTensors(prefix = ''): [string, TensorToWrite][] {
  const r = rng(7);
  const t = (name: string, shape: number[]): [string, TensorToWrite] => [prefix + name, { shape, data: r.uniformArray(shape.reduce((a, b) => a * b, 1)) }];
  const out = [t('wte.weight', [V, C]), t('wpe.weight', [T, C])];
  for (let i = 0; i < L; i++) {
    out.push(
      t(`h.${i}.ln_1.weight`, [C]), t(`h.${i}.ln_1.bias`, [C]),
      t(`h.${i}.attn.bias`, [1, 1, T, T]), t(`h.${i}.attn.masked_bias`, []),
      t(`h.${i}.attn.c_attn.weight`, [C, 3 * C]), t(`h.${i}.attn.c_attn.bias`, [3 * C]),
      t(`h.${i}.attn.c_proj.weight`, [C, C]), t(`h.${i}.attn.c_proj.bias`, [C]),
      t(`h.${i}.ln_2.weight`, [C]), t(`h.${i}.ln_2.bias`, [C]),
      t(`h.${i}.mlp.c_fc.weight`, [C, 4 * C]), t(`h.${i}.mlp.c_fc.bias`, [4 * C]),
      t(`h.${i}.mlp.c_proj.weight`, [4 * C, C]), t(`h.${i}.mlp.c_proj.bias`, [C]),
    );
  }
  out.push(t('ln_f.weight', [C]), t('ln_f.bias', [C]));
  return out;
}

/** Writes model.safetensors (and config.json when given) into a fresh directory. */
async function checkpoint(tensors: [string, TensorToWrite][], metadata: Record<string, string> = { format: 'pt' }, config?: object): Promise<string> {
  const dir = join(root, `m${dirNo++}`);
  mkdirSync(dir);
  const path = join(dir, 'model.safetensors');
  await writeSafetensors(path, tensors, metadata);
  if (config) writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return path;
}


const HF_CONFIG = { model_type: 'gpt2', n_layer: L, n_head: H, n_embd: C, vocab_size: V, n_positions: T };

test('imports HF names (with and without the transformer. prefix), skipping buffers and the tied head', async () => {
  for (const prefix of ['', 'transformer.']) {
    const hf = hfTensors(prefix);
    const lmHead: [string, TensorToWrite] = ['lm_head.weight', hf[0]![1]];
    const path = await checkpoint([...hf, lmHead], { format: 'pt' }, HF_CONFIG);
    const { config, tensors } = await loadGpt2Weights(path);
    assert.equal(config, TINY);
    const expected = GPT2_TENSOR_NAMES(config);
    assert.is(expected.length, 2 + 12 * L + 2);
    assert.equal([...tensors.keys()], expected.map((t) => t.name));
    const byName = new Map(hf);
    for (const { name, shape } of expected) {
      assert.equal(tensors.get(name)!.shape, shape, name);
      assert.equal(tensors.get(name)!.data, byName.get(prefix + name)!.data, name);
    }
    assert.not.ok(tensors.has('h.0.attn.bias') || tensors.has('lm_head.weight'));
  }
});

test('linear weights keep HF Conv1D layout (in, out): y = x·W + b is a plain row-major matmul', async () => {
  // w(i, j) is the weight from input i to output j; HF stores it at [i][j] of a (C, 3C) array.
  const w = (i: number, j: number) => Math.sin(1 + i * 3.1 + j * 0.7);
  const cAttn = new Float32Array(C * 3 * C);
  for (let i = 0; i < C; i++) for (let j = 0; j < 3 * C; j++) cAttn[i * 3 * C + j] = w(i, j);
  const hf = hfTensors().map(([n, t]): [string, TensorToWrite] => [n, n === 'h.1.attn.c_attn.weight' ? { shape: [C, 3 * C], data: cAttn } : t]);
  const { tensors } = await loadGpt2Weights(await checkpoint(hf, { format: 'pt', n_head: String(H) }));
  const W = tensors.get('h.1.attn.c_attn.weight')!;
  const b = tensors.get('h.1.attn.c_attn.bias')!.data;
  assert.equal(W.shape, [C, 3 * C]);
  const x = rng(3).uniformArray(C);
  // Conv1D: y_j = b_j + Σ_i x_i w(i, j), computed from the definition of w.
  const conv1d = Array.from({ length: 3 * C }, (_, j) => b[j]! + x.reduce((s, xi, i) => s + xi * w(i, j), 0));
  // Our layer: C = A·B with A = x (1 × in) and B = W (in × out), row-major, no transpose.
  const matmul = Array.from({ length: 3 * C }, (_, j) => {
    let s = b[j]!;
    for (let i = 0; i < C; i++) s += x[i]! * W.data[i * 3 * C + j]!;
    return s;
  });
  close(matmul, conv1d, 1e-6, 1e-6, 'x·W + b');
});

test('the head count comes from the option, the metadata or config.json, and they must agree', async () => {
  const hf = hfTensors();
  const bare = await checkpoint(hf);
  await rejects(loadGpt2Weights(bare), /model\.safetensors: the head count cannot be inferred from shapes: pass nHead/);
  assert.is((await loadGpt2Weights(bare, { nHead: 4 })).config.nHead, 4);
  assert.is((await loadGpt2Weights(await checkpoint(hf, { n_head: '2' }))).config.nHead, 2);
  assert.is((await loadGpt2Weights(await checkpoint(hf, {}, { num_attention_heads: 2 }))).config.nHead, 2);
  await rejects(loadGpt2Weights(await checkpoint(hf, { n_head: '2' }, HF_CONFIG), { nHead: 4 }), /head counts disagree: the nHead option = 4, __metadata__\.n_head = 2, .*config\.json: n_head = 2/);
  await rejects(loadGpt2Weights(bare, { nHead: 3 }), /nEmbd \(8\) must be divisible by nHead \(3\)/);
  await rejects(loadGpt2Weights(bare, { configPath: join(root, 'nowhere.json') }), /ENOENT/);
});

test('config.json must agree with the shapes and describe a tied LM head', async () => {
  const hf = hfTensors();
  await rejects(loadGpt2Weights(await checkpoint(hf, {}, { ...HF_CONFIG, n_layer: 3 })), /config\.json: n_layer = 3, but the checkpoint's shapes give 2/);
  await rejects(loadGpt2Weights(await checkpoint(hf, {}, { ...HF_CONFIG, n_positions: 1024 })), /n_positions = 1024, but .* give 16/);
  await rejects(loadGpt2Weights(await checkpoint(hf, {}, { ...HF_CONFIG, tie_word_embeddings: false })), /tie_word_embeddings is false/);
});

test('missing, misshapen, unexpected and doubled tensors are named errors', async () => {
  const hf = hfTensors();
  const without = (name: string) => hf.filter(([n]) => n !== name);
  const replaced = (name: string, shape: number[]) => hf.map(([n, t]): [string, TensorToWrite] => [n, n === name ? { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) } : t]);
  const load = async (ts: [string, TensorToWrite][]) => loadGpt2Weights(await checkpoint(ts), { nHead: H });

  await rejects(load(without('h.1.mlp.c_fc.bias')), /model\.safetensors: missing tensor 'h\.1\.mlp\.c_fc\.bias' for a GPT-2 with 2 layers, C=8, vocab 11, context 16; closest in the file: h\.1\.mlp\.c_fc\.weight, /);
  await rejects(load(without('ln_f.weight')), /missing tensor 'ln_f\.weight'.*closest in the file: .*ln_f\.bias/);
  await rejects(load(replaced('h.0.mlp.c_fc.weight', [C, 3 * C])), /tensor 'h\.0\.mlp\.c_fc\.weight' has shape \[8×24\], expected \[8×32\]/);
  await rejects(load(replaced('h.1.attn.c_attn.weight', [3 * C, C])), /'h\.1\.attn\.c_attn\.weight' has shape \[24×8\], expected \[8×24\]/);
  await rejects(load(replaced('wpe.weight', [T, C + 1])), /wpe\.weight is \[16×9\] but wte\.weight is \[11×8\]: widths differ/);
  await rejects(load(without('wte.weight')), /cannot infer the config: 'wte\.weight' is missing/);
  await rejects(load([...hf, ['h.0.attn.extra', { shape: [1], data: new Float32Array(1) }]]), /unexpected tensors for a GPT-2 with 2 layers.*: h\.0\.attn\.extra/);
  await rejects(load([...hf, ['transformer.ln_f.bias', { shape: [C], data: new Float32Array(C) }]]), /tensors 'ln_f\.bias' and 'transformer\.ln_f\.bias' both map to 'ln_f\.bias'/);
});

test('ourName strips the prefix and drops non-parameters', () => {
  assert.is(ourName('transformer.h.11.mlp.c_proj.weight'), 'h.11.mlp.c_proj.weight');
  assert.is(ourName('wte.weight'), 'wte.weight');
  assert.is(ourName('transformer.h.0.attn.masked_bias'), null);
  assert.is(ourName('h.3.attn.bias'), null);
  assert.is(ourName('h.3.attn.c_attn.bias'), 'h.3.attn.c_attn.bias');
  assert.is(ourName('lm_head.weight'), null);
});

test.run();
