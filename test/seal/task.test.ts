// QATask scores edits from a shared prefix, with the model's top at the answer rows only: the same
// rewards, bit for bit, and the same meta-gradient within f32 rounding, as a full pass per edit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteTokenizer } from '../../src/io/tokenizer.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { resolveMask } from '../../src/model/mask.ts';
import { IGNORE_INDEX } from '../../src/ops/crossentropy.ts';
import { gatherAtMask } from '../../src/seal/features.ts';
import { QATask } from '../../src/seal/task.ts';
import type { F32 } from '../../src/gpu/tensor.ts';
import { ForgettingProbe } from '../../src/tasks/forgetting.ts';
import { encodeQA } from '../../src/tasks/qa.ts';
import { PASSAGES } from '../fixtures/passages.ts';
import { close, gpu, releaseGpu } from '../helpers.ts';

test.after(releaseGpu);

const tiny = { vocabSize: 257, nCtx: 64, nLayer: 2, nHead: 2, nEmbd: 16 };

for (const tensors of [['h.*.mlp.c_fc.weight', 'h.*.mlp.c_proj.weight'], ['h.1.attn.c_attn.weight', 'h.1.mlp.c_proj.weight']]) {
  test(`edits scored from the shared prefix equal full passes (mask ${tensors.join(', ')})`, async () => {
    const g = await gpu();
    const model = GPT2.init(g, tiny, 4);
    const mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), { tensors });
    const task = await QATask.create(model, byteTokenizer, PASSAGES, mask, { kinds: ['grad', 'sign'], lookahead: 0 }, 1);
    const jobs = PASSAGES.map((_, p) => ({ p, coef: Array.from({ length: task.actionDim }, (_, i) => 0.3 * Math.cos(3 * p + i)) }));
    const scored = await task.score(jobs);
    const metas = await task.gradients(jobs, 0);
    for (const [i, job] of jobs.entries()) {
      const passage = PASSAGES[job.p]!;
      const items = passage.questions.map((q) => ({ question: q.question, answer: q.answers[0]! }));
      const scoredItems = passage.questions.map((q) => q.id.endsWith('-a'));
      const meanScored = (nll: Float64Array) => {
        let s = 0;
        scoredItems.forEach((k, b) => k && (s += nll[b]!));
        return s / scoredItems.filter(Boolean).length;
      };
      // Full passes: every position, from the embedding.
      const e = encodeQA(byteTokenizer, items, tiny.nCtx);
      const [tokens, targets] = [g.tensor(e.tokens, [e.B, e.T]), g.tensor(e.targets, [e.B, e.T])];
      const nll = async (overrides?: ReadonlyMap<string, F32>) => {
        const pass = model.forward(tokens, targets, overrides);
        const losses = await g.read(pass.losses!);
        pass.release();
        return Float64Array.from(e.answerTokens, (n, b) => losses.subarray(b * e.T, (b + 1) * e.T).reduce((s, v) => s + v, 0) / n);
      };
      const base = meanScored(await nll());
      const overrides = task.apply(job);
      const edited = meanScored(await nll(overrides));
      assert.is(scored[i]!.improvement, base - edited, 'score: the same bits');
      assert.is(metas[i]!.improvement, base - edited, 'gradients: the same bits');
      // The meta-gradient from a full pass with every parameter's gradient, then ⟨dW', direction⟩ on the host.
      const nScored = scoredItems.filter(Boolean).length;
      const w = Float32Array.from(e.targets, (t, k) => (t !== IGNORE_INDEX && scoredItems[Math.floor(k / e.T)] ? 1 / (e.answerTokens[Math.floor(k / e.T)]! * nScored) : 0));
      const weights = g.tensor(w, [e.B, e.T]);
      const pass = model.forward(tokens, targets, overrides);
      const grads = model.zerosLike();
      pass.backward(grads, weights);
      const gathered = gatherAtMask(model, grads, mask);
      const want: number[] = [];
      for (const [k, h] of gathered.entries()) {
        const [dW, dirs] = [await g.read(h), await g.read(task.features[job.p]!.directions[k]!)];
        for (let r = 0; r < 2; r++) want.push(dW.reduce((s, v, j) => s + v * dirs[r * dW.length + j]!, 0));
      }
      close(metas[i]!.grad, want, 1e-4, 1e-7, 'dL/dcoef');
      for (const t of [tokens, targets, weights, ...grads.values(), ...gathered]) t.release();
      pass.release();
    }
    task.release();
    model.release();
  });
}

test('several edits of a passage scored as one batched pass equal one pass per edit, bit for bit (a zero edit scores the base)', async () => {
  const g = await gpu();
  const model = GPT2.init(g, tiny, 5);
  const mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), { tensors: ['h.*.mlp.c_fc.weight', 'h.*.mlp.c_proj.weight'] });
  const task = await QATask.create(model, byteTokenizer, PASSAGES, mask, { kinds: ['grad', 'sign'], lookahead: 0 }, 1);
  const K = task.actionDim;
  // Passage 0 gets three edits (one of them zero), passage 1 two, interleaved with a lone edit of passage 2.
  const ps = [0, 1, 0, 2, 1, 0].filter((p) => p < PASSAGES.length);
  const jobs = ps.map((p, i) => ({ p, coef: Array.from({ length: K }, (_, k) => (i === 2 ? 0 : 0.4 * Math.sin(5 * i + k))) }));
  const batched = await task.score(jobs);
  const single: typeof batched = [];
  for (const j of jobs) single.push(...(await task.score([j])));
  batched.forEach((o, i) => {
    assert.is(o.improvement, single[i]!.improvement, `edit ${i}: improvement bits`);
    assert.ok(Object.is(o.measured, single[i]!.measured), `edit ${i}: measured`);
    assert.is(o.norm, single[i]!.norm);
  });
  assert.is(batched[2]!.improvement, 0, 'the zero edit scores the base exactly');
  task.release();
  model.release();
});

test('forgetting under several edits, run as variants of one pass per chunk, equals one measure per edit, bit for bit', async () => {
  const g = await gpu();
  const model = GPT2.init(g, tiny, 6);
  const mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), { tensors: ['h.*.mlp.c_fc.weight', 'h.*.mlp.c_proj.weight'] });
  const task = await QATask.create(model, byteTokenizer, PASSAGES, mask, { kinds: ['grad', 'sign'], lookahead: 0 }, 1);
  const lines = ['The river runs past the old mill.', 'Numbers: 1, 2, 3.', 'A much longer line of general text, about nothing in particular, to make chunks uneven.', 'Short.', 'Bakers bake bread at dawn.'];
  const probe = await ForgettingProbe.create(model, byteTokenizer, lines, 2);
  const jobs = [0, 1, 0].map((p, i) => ({ p: p % PASSAGES.length, coef: Array.from({ length: task.actionDim }, (_, k) => (i === 1 ? 0 : 0.5 * Math.cos(2 * i + k))) }));
  const batched = await task.forgetting(probe, jobs);
  for (const [i, j] of jobs.entries()) assert.is(batched[i], await probe.measure(task.apply(j)), `edit ${i}`);
  assert.is(batched[1], 0, 'the zero edit forgets nothing');
  probe.release();
  task.release();
  model.release();
});

test.run();
