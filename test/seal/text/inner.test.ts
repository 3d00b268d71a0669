// Batched inner loops: G adapters stacked and trained in one forward/backward per step end where
// each would alone (the plain single-adapter path, mean loss, global clipping), within f32
// summation order; the base keeps its bits; an empty self-edit in a batch is no update; rewards
// of batched and one-at-a-time inner loops agree.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteTokenizer as tok } from '../../../src/io/tokenizer.ts';
import { GPT2 } from '../../../src/model/gpt2.ts';
import { Lora, LoraOptimizer } from '../../../src/model/lora.ts';
import { passageBatch } from '../../../src/tasks/corpus.ts';
import { InnerLoop, loraUpdates, trainStack, type InnerOptions } from '../../../src/seal/text/inner.ts';
import { PASSAGES } from '../../fixtures/passages.ts';
import { close, gpu, releaseGpu, sameBits } from '../../helpers.ts';

test.after(releaseGpu);

// nCtx 16: the texts below span 1, 2 and 3 rows, so the batch pads both rows and positions.
const config = { vocabSize: 257, nCtx: 16, nLayer: 2, nHead: 2, nEmbd: 24 };
const O: InnerOptions = { steps: 4, lr: 1e-2, lora: { targets: ['h.*.mlp.*.weight', 'h.*.attn.c_attn.weight', 'h.1.attn.c_proj.weight'], rank: 3, alpha: 6 }, withPassage: false, seed: 3 };
const TEXTS = ['Tom is ten.', 'The river Ovel runs past the mill.', 'A lamp, a door and a boat stood by the old cart.'];
// Factors after k AdamW steps: Adam's step normalises each gradient element, so rounding in tiny
// elements moves by up to lr·(its share); measured well under these.
const [RTOL, ATOL] = [1e-3, 2e-5];

/** The reference: one plain adapter trained on `text` alone (mean loss, global-norm clipping), its factors read back. */
async function alone(model: GPT2, text: string): Promise<Map<string, Float32Array>> {
  const g = model.gpu;
  const b = passageBatch(tok, text, model.config.nCtx);
  const [tokens, targets] = [g.tensor(b.tokens, [b.B, b.T]), g.tensor(b.targets, [b.B, b.T])];
  const lora = Lora.create(model, O.lora, O.seed);
  const opt = new LoraOptimizer(model, lora, { lr: O.lr, weightDecay: 0, gradClip: 1 });
  for (let i = 0; i < O.steps; i++) await opt.update(tokens, targets, undefined, O.lr, false);
  const named = [...lora.tensors()];
  const data = await g.readMany(named.map(([, t]) => t));
  for (const x of [opt, lora, tokens, targets]) x.release();
  return new Map(named.map(([n], i) => [n, data[i] as Float32Array]));
}

test('G = 3 stacked adapters on texts of 1, 2 and 3 rows end where each alone does; the base keeps its bits', async () => {
  const g = await gpu();
  const model = GPT2.init(g, config, 5);
  const before = await model.toArrays();
  const live = g.liveTensors;
  const stack = await trainStack(model, tok, TEXTS, O);
  assert.is(stack.stack, 3);
  const named = [...stack.tensors()];
  const data = await g.readMany(named.map(([, t]) => t));
  stack.release();
  for (const [i, text] of TEXTS.entries()) {
    const ref = await alone(model, text);
    named.forEach(([n], k) => {
      const all = data[k] as Float32Array;
      const one = all.length / 3;
      close(all.subarray(i * one, (i + 1) * one), ref.get(n)!, RTOL, ATOL, `text ${i}: ${n}`);
    });
  }
  const after = await model.toArrays();
  for (const [n, a] of before) sameBits(after.get(n)!, a, n);
  assert.is(g.liveTensors, live, 'nothing leaks');
  model.release();
});

test('an empty self-edit in a batch is no update; the others are merged as trained alone', async () => {
  const g = await gpu();
  const model = GPT2.init(g, config, 6);
  const texts = [TEXTS[1]!, '', TEXTS[0]!];
  const got: { i: number; merged: Map<string, Float32Array> }[] = [];
  await loraUpdates(model, tok, texts, O, async (i, overrides) => {
    const names = [...overrides.keys()];
    const data = await g.readMany([...overrides.values()]);
    overrides.forEach((t) => t.release());
    got.push({ i, merged: new Map(names.map((n, k) => [n, data[k] as Float32Array])) });
  });
  assert.equal(got.map((x) => x.i), [0, 1, 2]);
  assert.is(got[1]!.merged.size, 0, 'empty text: no overrides');
  for (const i of [0, 2]) {
    const ref = await alone(model, texts[i]!);
    for (const [n, m] of got[i]!.merged) {
      // W + s·A·B from the reference factors, on the host.
      const w = (await model.toArrays()).get(n)!;
      const [a, b] = [ref.get(`${n}.lora_a`)!, ref.get(`${n}.lora_b`)!];
      const r = O.lora.rank;
      const nOut = b.length / r;
      const expect = w.map((v, k) => {
        const [row, col] = [Math.floor(k / nOut), k % nOut];
        let s = 0;
        for (let t = 0; t < r; t++) s += a[row * r + t]! * b[t * nOut + col]!;
        return v + (O.lora.alpha / r) * s;
      });
      close(m, expect, RTOL, ATOL, `text ${i}: merged ${n}`);
    }
  }
  model.release();
});

test('InnerLoop: batched rewards (batch 3, with an empty self-edit) equal one-at-a-time ones (batch 1) within 1e-5', async () => {
  const g = await gpu();
  const model = GPT2.init(g, { ...config, nCtx: 64 }, 7);
  const edits = [PASSAGES[0]!.context.slice(0, 40), '', 'Nothing here is about it.', PASSAGES[1]!.context.slice(0, 90)].map((text, k) => ({ passage: k % 2, text, ids: [], finish: 'eot' as const }));
  const rewards = async (batch: number) => {
    const inner = new InnerLoop(model, tok, PASSAGES, { ...O, batch });
    const r = await inner.rewards(edits);
    inner.release();
    return r;
  };
  const [one, batched] = [await rewards(1), await rewards(3)];
  assert.is(one[1], 0, 'an empty self-edit earns 0');
  assert.is(batched[1], 0);
  close(batched, one, 0, 1e-5, 'rewards');
  assert.ok(one.some((r) => Math.abs(r) > 1e-3), `the updates change the scores: ${one}`);
  assert.throws(() => new InnerLoop(model, tok, PASSAGES, { ...O, batch: 0 }), /InnerLoop: batch must be a positive integer/);
  model.release();
});

test.run();
