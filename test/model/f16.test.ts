// Weights stored in f16 (--dtype f16), computed in f32. Storage is kept apart from arithmetic, so a
// model stored f16 computes exactly what an f32 model holding the same (f16-rounded) values
// computes: logits, gradients and generations bit for bit. Against the unrounded f32 model the
// difference is the rounding of the weights alone, within the tolerance stated below.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { f16ToF32, f32ToF16 } from '../../src/io/safetensors.ts';
import { paramSpecs, type GPT2Config } from '../../src/model/config.ts';
import { generateTokens } from '../../src/model/generate.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { Llama } from '../../src/model/llama.ts';
import type { LlamaConfig } from '../../src/model/llama-config.ts';
import type { LanguageModel } from '../../src/model/lm.ts';
import { loadModel } from '../../src/model/load.ts';
import { Optimizer, DEFAULT_OPTIMIZE } from '../../src/model/optimize.ts';
import { convert } from '../../src/ops/convert.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { rowIndex } from '../../src/ops/rows.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'f16-test-'));
test.after(() => {
  rmSync(root, { recursive: true, force: true });
  releaseGpu();
});

// Awkward: C not a multiple of 4, a prime vocabulary.
const config: GPT2Config = { vocabSize: 97, nCtx: 16, nLayer: 2, nHead: 3, nEmbd: 18 };

test('f32 → f16 rounds to the nearest half; f16 → f32 is exact', async () => {
  const g = await gpu();
  const x = Float32Array.from([0, 1, -3, 0.5, 1.25, 65504, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, -1e-8]);
  const h = convert(g, g.tensor(x), 'f16');
  const bits = await g.read(h);
  const back = await g.read(convert(g, h, 'f32'));
  sameBits(back, f16ToF32(bits), 'the GPU widens as the host does');
  // Exact halves stay; ties go to even; others round to within half a unit in the last place.
  assert.equal([...back.slice(0, 8)], [0, 1, -3, 0.5, 1.25, 65504, 1, 1 + 4 * 2 ** -11]);
  close(back.slice(8), x.slice(8), 2 ** -11, 1e-7, 'rounded');
  // The host's rounding (f32ToF16, used to upload f16 weights) is the GPU's, subnormals, ties and overflow included.
  const r = rng(1);
  const many = Float32Array.from({ length: 4000 }, (_, i) => r.normal() * [1, 1e-5, 3e-7, 7e4, 2 ** -24][i % 5]!);
  many.set([2 ** -25, 3 * 2 ** -26, 65520, -65519, 1 + 2 ** -11, Infinity, -0], 0);
  assert.equal([...f32ToF16(many)], [...(await g.read(convert(g, g.tensor(many), 'f16')))]);
});

test('a matmul with f16 weights equals the f32 matmul of the rounded weights, bit for bit', async () => {
  const g = await gpu();
  const r = rng(2);
  for (const [M, K, N, transB] of [[1, 29, 37, false], [19, 33, 70, false], [40, 18, 97, true]] as const) {
    const a = g.tensor(r.uniformArray(M * K), [M, K]);
    const w = g.tensor(r.uniformArray(K * N), transB ? [N, K] : [K, N]);
    const h = convert(g, w, 'f16');
    const rounded = convert(g, h, 'f32');
    const [got, want] = await g.readMany([matmul(g, a, h, { transB }), matmul(g, a, rounded, { transB })]);
    sameBits(got as Float32Array, want as Float32Array, `${M}×${K}×${N}`);
  }
});

async function models(seed: number) {
  const g = await gpu();
  const init = GPT2.init(g, config, seed);
  const arrays = await init.toArrays();
  init.release();
  const half = GPT2.fromArrays(g, config, arrays, 'f16');
  // The same values as f32: what the f16 model must compute exactly.
  const rounded = GPT2.fromArrays(g, config, await half.toArrays(), 'f32');
  const full = GPT2.fromArrays(g, config, arrays, 'f32');
  return { g, half, rounded, full };
}

/** Logits, loss, the named gradients and greedy tokens on fixed random tokens: what f16 storage must leave unchanged. */
async function outputs(m: LanguageModel, grads: readonly string[]) {
  const g = m.gpu;
  const r = rng(4);
  const V = m.config.vocabSize;
  const toks = g.tensor(Uint32Array.from({ length: 2 * 11 }, () => r.int(V)), [2, 11]);
  const tgts = g.tensor(Uint32Array.from({ length: 2 * 11 }, () => r.int(V)), [2, 11]);
  const pass = m.forward(toks, tgts);
  const gs = m.zerosLike();
  pass.backward(gs);
  const out = (await g.readMany([pass.logits, pass.loss!, ...grads.map((n) => gs.get(n)!)])) as Float32Array[];
  const gen = (await generateTokens(m, [[1, 2, 3], [5]], { maxNew: 6 })).map((x) => x.tokens);
  pass.release();
  for (const t of [toks, tgts, ...gs.values()]) t.release();
  return { out, gen };
}

/** The f16 model against the f32 model of its rounded weights (the same bits) and the unrounded one (logits within 2e-3). */
async function matchesRounded(half: LanguageModel, rounded: LanguageModel, full: LanguageModel, grads: readonly string[]) {
  const [h, rd, f] = [await outputs(half, grads), await outputs(rounded, grads), await outputs(full, grads)];
  h.out.forEach((x, i) => sameBits(x, rd.out[i]!, `output ${i}`));
  assert.equal(h.gen, rd.gen);
  // Rounding every weight by ≤ 2⁻¹¹ relative moves these logits (|logit| < 1) by less than 2e-3.
  close(h.out[0]!, f.out[0]!, 0, 2e-3, 'logits against f32');
}

const bytes = (m: LanguageModel) => [...m.params.values()].reduce((s, t) => s + t.bytes, 0);

test('GPT-2 stored f16: matrices take half the bytes; logits, loss, gradients and greedy tokens equal the f32 model of the rounded weights; logits within 2e-3 of the f32 model', async () => {
  const { half, rounded, full } = await models(3);
  const matrices = paramSpecs(config).filter((s) => s.shape.length === 2).reduce((s, p) => s + p.shape[0]! * p.shape[1]!, 0);
  assert.is(bytes(full) - bytes(half), 2 * matrices);
  assert.is(half.dtype, 'f16');
  assert.is(half.params.get('ln_f.bias')!.dtype, 'f32', 'vectors stay f32');
  await matchesRounded(half, rounded, full, ['wte.weight', 'h.1.mlp.c_fc.weight']);
  for (const m of [half, rounded, full]) m.release();
});

test('Llama stored f16 (GQA, untied head, q/k/v biases): the same bits as the f32 model of the rounded weights; logits within 2e-3 of the f32 model', async () => {
  const g = await gpu();
  const live = g.liveTensors;
  const c: LlamaConfig = { modelType: 'qwen2', vocabSize: 97, nCtx: 16, nLayer: 2, nEmbd: 24, nHead: 4, nKvHead: 2, headDim: 6, intermediate: 36, ropeTheta: 10000, ropeScaling: null, rmsEps: 1e-5, tied: false, qkvBias: true };
  const init = Llama.init(g, c, 3);
  const arrays = await init.toArrays();
  init.release();
  const half = Llama.fromArrays(g, c, arrays, 'f16');
  const rounded = Llama.fromArrays(g, c, await half.toArrays(), 'f32');
  const full = Llama.fromArrays(g, c, arrays, 'f32');
  assert.is(half.dtype, 'f16');
  assert.is(half.params.get('model.layers.0.self_attn.q_proj.bias')!.dtype, 'f32', 'vectors stay f32');
  assert.ok(bytes(half) < 0.6 * bytes(full));
  await matchesRounded(half, rounded, full, ['model.embed_tokens.weight', 'lm_head.weight', 'model.layers.1.mlp.gate_proj.weight', 'model.layers.0.self_attn.k_proj.bias']);
  for (const m of [half, rounded, full]) m.release();
  assert.is(g.liveTensors, live);
});

test('GPT-2 stored f16 with a shared prefix, rows and a partial gradient map: the same bits as the f32 model of the rounded weights', async () => {
  const { g, half, rounded, full } = await models(5);
  const r = rng(6);
  const toks = g.tensor(Uint32Array.from({ length: 2 * 9 }, () => r.int(config.vocabSize)), [2, 9]);
  const tgts = g.tensor(Uint32Array.from({ length: 2 * 9 }, () => r.int(config.vocabSize)), [2, 9]);
  const rows = rowIndex(g, [0, 3, 8, 10, 17], 18);
  const names = ['h.1.mlp.c_fc.weight', 'ln_f.weight'];
  const run = async (m: GPT2) => {
    const prefix = m.prefix(toks, m.prefixPoint(names)!);
    const pass = m.forward(toks, tgts, undefined, { prefix, rows });
    const grads = new Map(names.map((n) => [n, g.zeros(m.params.get(n)!.shape)]));
    pass.backward(grads);
    const out = (await g.readMany([pass.logits, pass.loss!, ...grads.values()])) as Float32Array[];
    pass.release();
    for (const t of [prefix.x, ...grads.values()]) t.release();
    return out;
  };
  const [h, rd] = [await run(half), await run(rounded)];
  assert.equal(h[0]!.length, 5 * config.vocabSize, 'logits at the rows only');
  h.forEach((x, i) => sameBits(x, rd[i]!, `output ${i}`));
  for (const t of [toks, tgts, rows.idx]) t.release();
  for (const m of [half, rounded, full]) m.release();
});

test('training f16 weights: AdamW updates an f32 master; the weights are its rounding', async () => {
  const { g, half, rounded, full } = await models(5);
  full.release();
  const r = rng(6);
  const toks = g.tensor(Uint32Array.from({ length: 2 * 8 }, () => r.int(config.vocabSize)), [2, 8]);
  const tgts = g.tensor(Uint32Array.from({ length: 2 * 8 }, () => r.int(config.vocabSize)), [2, 8]);
  const oh = new Optimizer(half, DEFAULT_OPTIMIZE);
  const or = new Optimizer(rounded, DEFAULT_OPTIMIZE);
  const lh = await oh.update(toks, tgts);
  const lr = await or.update(toks, tgts);
  assert.is(lh.loss, lr.loss);
  const name = 'h.0.attn.c_attn.weight';
  const [master, weights, want] = await g.readMany([oh.master.get(name)!, half.params.get(name)!, rounded.params.get(name)!]);
  sameBits(master as Float32Array, want as Float32Array, 'master = the f32 model after the same step');
  const wide = f16ToF32(weights as Uint16Array);
  close(wide, want as Float32Array, 2 ** -11, 1e-7, 'f16 weights = the master rounded');
  assert.ok(wide.some((x, i) => x !== (want as Float32Array)[i]), 'the master keeps what f16 cannot');
  oh.release();
  or.release();
  half.release();
  rounded.release();
});

test('a BF16 Hugging Face checkpoint loads converted, as f32 (exactly) or f16', async () => {
  const g = await gpu();
  const c = { ...config, vocabSize: 257 }; // the byte tokenizer's
  const init = GPT2.init(g, c, 7);
  const arrays = await init.toArrays();
  init.release();
  // bf16 is the top half of an f32: write the file by hand (our writer writes f32 only).
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const parts: Uint8Array[] = [];
  const want = new Map<string, Float32Array>();
  let offset = 0;
  for (const s of paramSpecs(c)) {
    const a = arrays.get(s.name)!;
    const top = Uint16Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (u) => u >>> 16);
    want.set(s.name, new Float32Array(Uint32Array.from(top, (t) => t << 16).buffer));
    header[`transformer.${s.name}`] = { dtype: 'BF16', shape: s.shape, data_offsets: [offset, offset + top.byteLength] };
    parts.push(new Uint8Array(top.buffer));
    offset += top.byteLength;
  }
  const text = JSON.stringify(header);
  const json = Buffer.from(text.padEnd(Math.ceil(text.length / 8) * 8));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(join(root, 'model.safetensors'), Buffer.concat([len, json, ...parts]));
  writeFileSync(join(root, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_head: c.nHead }));
  const full = (await loadModel(g, root, { dtype: 'f32' })).model;
  const half = (await loadModel(g, root, { dtype: 'f16' })).model;
  const got = await full.toArrays();
  for (const [n, w] of want) sameBits(got.get(n)!, w, n);
  const h = await half.toArrays();
  close(h.get('h.1.mlp.c_proj.weight')!, want.get('h.1.mlp.c_proj.weight')!, 2 ** -11, 1e-7, 'bf16 → f16');
  assert.is(half.dtype, 'f16');
  full.release();
  half.release();
});

test.run();
