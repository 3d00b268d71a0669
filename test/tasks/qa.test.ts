// Answer scoring: the right positions carry the loss, and the GPU batch equals per-item CPU runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteTokenizer as tok } from '../../src/io/tokenizer.ts';
import type { GPT2Config } from '../../src/model/config.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { IGNORE_INDEX } from '../../src/ops/crossentropy.ts';
import * as ref from '../../src/reference/gpt2.ts';
import { answerNll, encodeQA, exactMatch, normalizeAnswer } from '../../src/tasks/qa.ts';
import { close, gpu, releaseGpu } from '../helpers.ts';

test.after(releaseGpu);

test('encodeQA puts the loss on answer tokens only', () => {
  const e = encodeQA(tok, [{ question: 'Who?', answer: 'Bo' }, { question: 'Where is it?', answer: 'X' }], 64);
  // "Q: Who?\nA:" is 10 bytes, " Bo\n" 4: 14 tokens → 13 inputs; the second item is longer.
  assert.equal(e.answerTokens, [4, 3]);
  assert.is(e.T, 'Q: Where is it?\nA:'.length + 3 - 1);
  const row0 = Array.from(e.targets.subarray(0, e.T));
  const scored = row0.map((t, i) => [t, i] as const).filter(([t]) => t !== IGNORE_INDEX);
  assert.equal(scored.map(([t]) => String.fromCharCode(t)).join(''), ' Bo\n');
  assert.equal(scored.map(([, i]) => i), [9, 10, 11, 12]);
});

test('a prompt longer than the context loses its start, never the answer', () => {
  const e = encodeQA(tok, [{ question: 'x'.repeat(100), answer: 'yes' }], 16);
  assert.is(e.T, 16);
  assert.is(e.answerTokens[0], 5);
  assert.throws(() => encodeQA(tok, [{ question: 'q', answer: 'z'.repeat(20) }], 16), /too long for a context of 16/);
});

test('answerNll equals the CPU reference item by item', async () => {
  const g = await gpu();
  const config: GPT2Config = { vocabSize: 257, nCtx: 32, nLayer: 1, nHead: 2, nEmbd: 8 };
  const model = GPT2.init(g, config, 5);
  const items = [
    { question: 'Who made it?', answer: 'Vel' },
    { question: 'When?', answer: '1901' },
    { question: 'Where was the river?', answer: 'far away' },
  ];
  const got = await answerNll(model, tok, items);
  const arrays = await model.toArrays();
  const params = new Map([...arrays].map(([k, v]) => [k, Float64Array.from(v)]));
  const want = items.map((it) => {
    const e = encodeQA(tok, [it], config.nCtx);
    return ref.forward(config, params, e.tokens, Array.from(e.targets), 1, e.T).loss;
  });
  close(got, want, 1e-5, 1e-5, 'answer NLL');
  model.release();
});

test('exact match uses SQuAD normalisation', () => {
  assert.is(normalizeAnswer('The  Blue-Mills!'), 'blue mills');
  assert.ok(exactMatch('the harp.', ['Harp']));
  assert.not.ok(exactMatch('harpist', ['harp']));
});

test.run();
