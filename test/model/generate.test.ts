// Generation with a KV cache: the decode-attention kernel against its CPU reference, cached
// generation against a full forward per step, batching, stop conditions, overrides and limits.
import { rejects } from 'node:assert/strict';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { byteTokenizer as tok } from '../../src/io/tokenizer.ts';
import type { GPT2Config } from '../../src/model/config.ts';
import { generate, generateTokens, sampleToken, type TokenGenerateOptions } from '../../src/model/generate.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { attentionForward } from '../../src/ops/attention.ts';
import { decodeAttention, kvFill } from '../../src/ops/decode.ts';
import * as ref from '../../src/reference/decode.ts';
import { greedyAnswers } from '../../src/tasks/qa.ts';
import { Rng } from '../../src/util/random.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// Awkward on purpose: C not a multiple of 4, 3 heads, a prime vocabulary.
const SMALL: GPT2Config = { vocabSize: 29, nCtx: 24, nLayer: 2, nHead: 3, nEmbd: 18 };
// The byte tokenizer's vocabulary, for text-level tests.
const BYTES: GPT2Config = { vocabSize: 257, nCtx: 96, nLayer: 1, nHead: 2, nEmbd: 16 };

/** A random model with weights large enough that its logits are far from ties. */
async function model(g: Gpu, config: GPT2Config, seed: number): Promise<GPT2> {
  const r = rng(seed);
  const init = GPT2.init(g, config, seed);
  const arrays = await init.toArrays();
  init.release();
  for (const a of arrays.values()) for (let i = 0; i < a.length; i++) a[i]! += 0.3 * r.normal();
  return GPT2.fromArrays(g, config, arrays);
}

const PROMPTS = [[1, 2, 3], [5], [7, 8, 9, 10, 11, 12, 13], [4, 4]];

test('decode attention matches the CPU reference and appends k, v at each position', async () => {
  const g = await gpu();
  // [B, C, NH, Tcap, pos]: one position, head size 1, C not a multiple of 4, B·NH·T past 64.
  const cases: [number, number, number, number, number[]][] = [
    [1, 4, 1, 1, [0]],
    [3, 15, 3, 11, [0, 4, 10]],
    [2, 3, 3, 6, [5, 2]],
    [2, 12, 2, 70, [69, 33]],
  ];
  for (const [B, C, NH, Tcap, pos] of cases) {
    const r = rng(B * 31 + C);
    const qkv = r.uniformArray(B * 3 * C, -2, 2);
    const kv = r.uniformArray(B * Tcap * 2 * C, -2, 2);
    const want = ref.decodeAttention(qkv, kv, pos, B, Tcap, C, NH);
    const [tq, tkv, tpos] = [g.tensor(qkv, [B, 3 * C]), g.tensor(kv, [B, Tcap, 2 * C]), g.tensor(Uint32Array.from(pos))];
    const out = decodeAttention(g, tq, tkv, tpos, Math.max(...pos) + 1, NH);
    const [o, cache] = await g.readMany([out, tkv]);
    const what = `B=${B} C=${C} NH=${NH} Tcap=${Tcap}`;
    close(o!, want.out, 1e-5, 1e-5, `out ${what}`);
    sameBits(cache as Float32Array, Float32Array.from(want.kv), `cache ${what}`);
    const again = decodeAttention(g, tq, tkv, tpos, Math.max(...pos) + 1, NH);
    sameBits(await g.read(again), o as Float32Array, `rerun ${what}`);
    for (const t of [tq, tkv, tpos, out, again]) t.release();
  }
});

test('a decode step after kvFill is the same bits as the last row of full causal attention', async () => {
  const g = await gpu();
  const [B, T, C, NH, Tcap] = [2, 9, 12, 3, 13];
  const qkv = rng(5).uniformArray(B * T * 3 * C, -2, 2);
  const full = attentionForward(g, g.tensor(qkv, [B, T, 3 * C]), NH);
  const prefix = new Float32Array(B * (T - 1) * 3 * C);
  const lastRows = new Float32Array(B * 3 * C);
  for (let b = 0; b < B; b++) {
    prefix.set(qkv.subarray(b * T * 3 * C, (b * T + T - 1) * 3 * C), b * (T - 1) * 3 * C);
    lastRows.set(qkv.subarray((b * T + T - 1) * 3 * C, (b + 1) * T * 3 * C), b * 3 * C);
  }
  const kv = g.zeros([B, Tcap, 2 * C]);
  kvFill(g, g.tensor(prefix, [B, T - 1, 3 * C]), kv);
  const step = decodeAttention(g, g.tensor(lastRows, [B, 3 * C]), kv, g.tensor(new Uint32Array(B).fill(T - 1)), T, NH);
  const [all, one] = await g.readMany([full.out, step]);
  const lastOfFull = new Float32Array(B * C);
  for (let b = 0; b < B; b++) lastOfFull.set(all!.subarray((b * T + T - 1) * C, (b + 1) * T * C), b * C);
  sameBits(one as Float32Array, lastOfFull, 'decode step vs full attention');
});

test('decode kernels name bad inputs', async () => {
  const g = await gpu();
  const kv = g.zeros([2, 5, 12]);
  const pos = g.tensor(new Uint32Array([1, 2]));
  assert.throws(() => decodeAttention(g, g.zeros([2, 17]), kv, pos, 3, 2), /qkv must have shape \[B×3C\]/);
  assert.throws(() => decodeAttention(g, g.zeros([2, 24]), kv, pos, 3, 2), /kv must have shape \[2×\*×16\], got \[2×5×12\]/);
  assert.throws(() => decodeAttention(g, g.zeros([2, 18]), kv, pos, 3, 4), /C = 6 must split into NH = 4 heads/);
  assert.throws(() => decodeAttention(g, g.zeros([2, 18]), g.zeros([2, 5, 12]), pos, 6, 2), /T = 6 must be in 1\.\.5/);
  assert.throws(() => decodeAttention(g, g.zeros([2, 18]), g.zeros([2, 5, 12]), g.zeros([2]), 3, 2), /pos must be u32/);
  assert.throws(() => kvFill(g, g.zeros([2, 6, 18]), g.zeros([2, 5, 12])), /6 positions do not fit a cache of 5/);
});

test('cached generation equals a full forward per step, token for token (greedy and sampled)', async () => {
  const g = await gpu();
  const m = await model(g, SMALL, 3);
  const options: TokenGenerateOptions[] = [{ maxNew: 12 }, { maxNew: 12, temperature: 0.8, topK: 9, topP: 0.9, seed: 42 }, { maxNew: 8, temperature: 1.3, seed: 7 }];
  for (const o of options) {
    const cached = await generateTokens(m, PROMPTS, o);
    const full = await generateTokens(m, PROMPTS, { ...o, cache: false });
    assert.equal(cached, full, JSON.stringify(o));
    assert.ok(cached.every((s) => s.tokens.length === o.maxNew && s.finish === 'length'));
    // Not a degenerate model: the continuations differ and vary.
    assert.ok(new Set(cached.map((s) => s.tokens.join())).size === PROMPTS.length);
    assert.ok(cached.some((s) => new Set(s.tokens).size > 2));
  }
  m.release();
});

test('a batch of different prompt lengths equals its prompts one by one', async () => {
  const g = await gpu();
  const m = await model(g, SMALL, 4);
  for (const o of [{ maxNew: 9 }, { maxNew: 9, temperature: 1, topP: 0.8, seed: 11 }]) {
    const batch = await generateTokens(m, PROMPTS, o);
    for (const [b, p] of PROMPTS.entries()) {
      const [alone] = await generateTokens(m, [p], { ...o, ...(o.seed !== undefined ? { seed: o.seed + b } : {}) });
      assert.equal(alone, batch[b], `prompt ${b}`);
    }
  }
  m.release();
});

test('sequences end at eot or a stop condition; the rest of the batch goes on', async () => {
  const g = await gpu();
  const m = await model(g, SMALL, 5);
  const free = await generateTokens(m, PROMPTS, { maxNew: 10 });
  const eot = free[0]!.tokens[3]!;
  const ended = await generateTokens(m, PROMPTS, { maxNew: 10, eot });
  ended.forEach((s, b) => {
    const first = free[b]!.tokens.indexOf(eot);
    if (first < 0) assert.equal(s, free[b]);
    else assert.equal(s, { tokens: free[b]!.tokens.slice(0, first), finish: 'eot' });
  });
  assert.is(ended[0]!.finish, 'eot');
  const stopped = await generateTokens(m, PROMPTS, { maxNew: 10, stop: (ids, b) => b === 2 && ids.length === 4 });
  assert.equal(stopped[2], { tokens: free[2]!.tokens.slice(0, 4), finish: 'stop' });
  assert.equal(stopped[1], free[1]);
  m.release();
});

test('stop strings cut the text before the first one', async () => {
  const g = await gpu();
  const m = await model(g, BYTES, 6);
  const prompts = ['Q: who?\nA:', 'hello'];
  const free = await generate(m, tok, prompts, { maxNew: 16 });
  const text = free[0]!.text;
  // Two ASCII characters from past the start (a lone byte ≥ 128 decodes as U+FFFD wherever it is).
  const at = Array.from(text, (_, i) => i).find((i) => i >= 2 && /^[ -~]{2}$/.test(text.slice(i, i + 2)))!;
  const stop = text.slice(at, at + 2);
  const cut = await generate(m, tok, prompts, { maxNew: 16, stop: [stop, '\u0000never'] });
  assert.is(cut[0]!.text, text.slice(0, text.indexOf(stop)));
  assert.is(cut[0]!.finish, 'stop');
  assert.ok(cut[0]!.tokens.length < 16);
  assert.is(tok.decode(cut[0]!.tokens).indexOf(stop), text.indexOf(stop), 'generation ends at the token that completes the stop');
  if (!free[1]!.text.includes(stop)) assert.equal(cut[1], free[1]);
  m.release();
});

test('overrides change the output, match a full forward under the same overrides, and leave the model untouched', async () => {
  const g = await gpu();
  const m = await model(g, SMALL, 8);
  const before = await m.toArrays();
  const name = 'h.1.mlp.c_fc.weight';
  const edited = g.tensor(rng(9).normalArray(before.get(name)!.length, 1), m.params.get(name)!.shape);
  const overrides = new Map([[name, edited]]);
  const base = await generateTokens(m, PROMPTS, { maxNew: 10 });
  const withEdit = await generateTokens(m, PROMPTS, { maxNew: 10, overrides });
  assert.not.equal(withEdit, base);
  assert.equal(withEdit, await generateTokens(m, PROMPTS, { maxNew: 10, overrides, cache: false }));
  const after = await m.toArrays();
  for (const [n, a] of before) sameBits(after.get(n)!, a, n);
  assert.equal(await generateTokens(m, PROMPTS, { maxNew: 10 }), base);
  edited.release();
  m.release();
});

test('greedyAnswers: the first line of a greedy continuation of each question prompt, batched', async () => {
  const g = await gpu();
  const m = await model(g, BYTES, 10);
  const questions = ['Who is Ada?', 'Where?', 'What is the colour of the sky over the hills today?'];
  const answers = await greedyAnswers(m, tok, questions, { maxNew: 12, context: 'Ada lives here. ' });
  for (const [i, q] of questions.entries()) {
    const [one] = await generate(m, tok, [`Ada lives here. Q: ${q}\nA:`], { maxNew: 12 });
    assert.is(answers[i], one!.text.split('\n')[0]!.trim());
  }
  // A context longer than the model's keeps its end.
  assert.is((await greedyAnswers(m, tok, ['Who?'], { context: 'x'.repeat(200) })).length, 1);
  m.release();
});

test('prompts beyond the context, empty prompts and bad options are named errors; nothing leaks', async () => {
  const g = await gpu();
  const m = await model(g, SMALL, 12);
  const live = g.liveTensors;
  await rejects(generateTokens(m, [[1], Array(20).fill(2)], { maxNew: 5 }), /prompt 1 has 20 tokens; with maxNew = 5 that is 25 positions, over the model's context of 24/);
  await rejects(generateTokens(m, [Array(25).fill(1)], { maxNew: 1 }), /over the model's context of 24/);
  await rejects(generateTokens(m, [[]]), /prompt 0 is empty/);
  await rejects(generateTokens(m, [[29]], { maxNew: 2 }), /token id 29 .* vocabulary of 29/);
  await rejects(generateTokens(m, [[1]], { temperature: -1 }), /temperature must be ≥ 0/);
  await rejects(generateTokens(m, [[1]], { topP: 0 }), /topP must be in \(0, 1\]/);
  await rejects(generateTokens(m, [[1]], { topK: 2.5 }), /topK must be a positive integer/);
  await rejects(generateTokens(m, [[1]], { maxNew: 0 }), /maxNew must be a positive integer/);
  assert.equal(await generateTokens(m, []), []);
  // Exactly the context is fine.
  assert.is((await generateTokens(m, [Array(20).fill(1)], { maxNew: 4 }))[0]!.tokens.length, 4);
  assert.is(g.liveTensors, live, `leaked: ${g.liveLabels().slice(-5).join(', ')}`);
  m.release();
});

test('sampling: greedy takes the first maximum, top-k and top-p restrict the draw, a seed repeats it', () => {
  const logits = Float32Array.from([1, 3, 3, -2, 2.5, 0]);
  assert.is(sampleToken(logits, {}, new Rng(1)), 1);
  const draws = (o: object, n = 400) => {
    const r = new Rng(3);
    return Array.from({ length: n }, () => sampleToken(logits, o, r));
  };
  assert.equal(new Set(draws({ temperature: 1, topK: 2 })), new Set([1, 2]));
  // top-p 0.6: the two tokens at 3 carry ~0.71 of the mass together, so nothing else is drawn.
  assert.equal(new Set(draws({ temperature: 1, topP: 0.6 })), new Set([1, 2]));
  assert.equal(new Set(draws({ temperature: 1, topP: 0.3 })), new Set([1]));
  assert.equal(new Set(draws({ temperature: 1 }, 5000)), new Set([0, 1, 2, 3, 4, 5]));
  assert.equal(draws({ temperature: 0.7 }), draws({ temperature: 0.7 }));
  assert.throws(() => sampleToken(Float32Array.from([0, NaN]), {}, new Rng(1)), /logit 1 is NaN/);
});

test.run();
