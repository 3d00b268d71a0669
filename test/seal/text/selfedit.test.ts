// SEAL variant B on tiny models: self-edit sampling is reproducible and bounded; the inner loop
// rewards a self-edit that states the answers over one that does not; one ReST-EM round on a
// problem where some self-edits help and others do not raises the mean reward of fresh samples,
// and leaves the base model's bits alone.
import { test } from 'uvu';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { byteTokenizer as tok } from '../../../src/io/tokenizer.ts';
import { GPT2 } from '../../../src/model/gpt2.ts';
import { Lora } from '../../../src/model/lora.ts';
import { answerText, questionPrompt } from '../../../src/tasks/corpus.ts';
import type { Passage } from '../../../src/tasks/squad.ts';
import { InnerLoop, type Rewarder } from '../../../src/seal/text/inner.ts';
import { DEFAULT_OUTER, groupAdvantages, keptEdits, SelfEditTrainer, type OuterOptions } from '../../../src/seal/text/outer.ts';
import { continual, evaluateText } from '../../../src/seal/text/evaluate.ts';
import { writeTextReport } from '../../../src/report/text-report.ts';
import { sampleSelfEdits, type SampleOptions, type SelfEdit } from '../../../src/seal/text/selfedit.ts';
import { PASSAGES } from '../../fixtures/passages.ts';
import { gpu, releaseGpu, sameBits } from '../../helpers.ts';

test.after(releaseGpu);

const config = { vocabSize: 257, nCtx: 48, nLayer: 1, nHead: 2, nEmbd: 32 };
const SHORT: Passage[] = [
  { id: '0', title: 'a', context: 'ab', questions: [] },
  { id: '1', title: 'c', context: 'cd', questions: [] },
];
const SAMPLING: SampleOptions = { samples: 3, temperature: 1, maxNew: 12, seed: 4 };

test('sampling: the same seed gives the same self-edits, another seed others; length and stop string hold', async () => {
  const g = await gpu();
  const model = GPT2.init(g, config, 1);
  const a = await sampleSelfEdits(model, tok, SHORT, SAMPLING);
  const b = await sampleSelfEdits(model, tok, SHORT, SAMPLING);
  const c = await sampleSelfEdits(model, tok, SHORT, { ...SAMPLING, seed: 5 });
  assert.equal(a, b);
  assert.not.equal(a.map((e) => e.text), c.map((e) => e.text));
  assert.equal(a.map((e) => e.passage), [0, 0, 0, 1, 1, 1]);
  for (const e of [...a, ...c]) {
    assert.ok(e.ids.length <= SAMPLING.maxNew, `${JSON.stringify(e.text)} is over maxNew`);
    assert.not.ok(e.text.includes('\n\n'), 'cut at the stop string');
  }
  model.release();
});

test('group advantages and the ReST-EM filter', () => {
  const edits = [0, 0, 0, 1, 1].map((passage) => ({ passage, text: '', ids: [], finish: 'eot' as const }));
  const r = [1, 2, -3, 0.5, 0.5];
  const adv = groupAdvantages(edits, r);
  assert.ok(Math.abs(adv[0]! + adv[1]! + adv[2]!) < 1e-12 && adv[1]! > adv[0]! && adv[3] === 0 && adv[4] === 0);
  assert.equal(keptEdits(edits, r, 'positive'), [0, 1, 3, 4]);
  assert.equal(keptEdits(edits, r, 'best'), [1, 3]);
});

/**
 * A tiny model whose token embeddings are 20× GPT-2's init: with N(0, 0.02) ones its logits span
 * about ±0.6 whatever the blocks compute, so no adapter on the blocks could prefer any token.
 */
async function peakyModel(seed: number): Promise<GPT2> {
  const g = await gpu();
  const init = GPT2.init(g, config, seed);
  const arrays = await init.toArrays();
  init.release();
  arrays.get('wte.weight')!.forEach((v, i, a) => (a[i] = 20 * v));
  return GPT2.fromArrays(g, config, arrays);
}

test('inner loop: a self-edit that states the answers earns more than one that does not', async () => {
  const model = await peakyModel(2);
  const inner = new InnerLoop(model, tok, PASSAGES, { steps: 10, lr: 1e-2, lora: { targets: ['h.*.mlp.*.weight', 'h.*.attn.c_attn.weight'], rank: 4, alpha: 8 }, withPassage: false, seed: 1 });
  const qa = PASSAGES[0]!.questions.map((q) => questionPrompt(q.question) + answerText(q.answers[0]!)).join('');
  const good = await inner.scoreText(0, qa);
  const bad = await inner.scoreText(0, 'The weather is cold in the hills today.\n');
  const none = await inner.scoreText(0, '');
  assert.ok(good.reward > 0.5, `reward of the answers: ${good.reward}`);
  assert.ok(good.reward > bad.reward + 0.5, `answers ${good.reward} vs unrelated ${bad.reward}`);
  assert.is(none.reward, 0);
  inner.release();
  model.release();
});

/** A problem where self-edits with more lowercase letters help: reward = their share − 0.15. */
const letters: Rewarder = {
  async rewards(edits: readonly SelfEdit[]) {
    return edits.map((e) => (e.text.length ? (e.text.match(/[a-z]/g)?.length ?? 0) / e.text.length : 0) - 0.15);
  },
};

for (const [algo, lr] of [['rest-em', 3e-2], ['reinforce', 1e-2]] as const) {
  test(`${algo}: one round raises the mean reward of fresh samples; the base keeps its bits`, async () => {
    const model = await peakyModel(3);
    const before = await model.toArrays();
    const generator = Lora.create(model, { targets: ['h.*.mlp.*.weight', 'h.*.attn.*.weight'], rank: 4, alpha: 8 }, 1);
    const o: OuterOptions = { ...DEFAULT_OUTER, algo, updateSteps: 12, updateBatch: 8, lr, sampling: { samples: 16, temperature: 1, maxNew: 16, seed: 0 } };
    const trainer = new SelfEditTrainer(model, tok, generator, o);
    const meanOf = async (seed: number) => (await letters.rewards(await trainer.sample(SHORT, seed))).reduce((a, b) => a + b, 0) / (2 * 16);
    const pre = await meanOf(100);
    const round = await trainer.step(SHORT, letters, 7);
    const post = await meanOf(100);
    assert.ok(round.used > 0 && (algo === 'reinforce' || round.used < 32), `${round.used} of 32 used`);
    assert.ok(post > pre + 0.05, `mean reward ${pre.toFixed(3)} → ${post.toFixed(3)}`);
    const after = await model.toArrays();
    for (const [n, a] of before) sameBits(after.get(n)!, a, n);
    trainer.release();
    generator.release();
    model.release();
  });
}

test('a full ReST-EM round with the real inner loop leaves the base bit-identical', async () => {
  const g = await gpu();
  const model = GPT2.init(g, { ...config, nCtx: 128 }, 6);
  const before = await model.toArrays();
  const spec = { targets: ['h.0.mlp.c_fc.weight', 'h.0.attn.c_attn.weight'], rank: 2, alpha: 4 };
  const generator = Lora.create(model, spec, 1);
  const inner = new InnerLoop(model, tok, PASSAGES, { steps: 2, lr: 1e-2, lora: spec, withPassage: true, seed: 1 });
  // keep 'positive' with a rewarder shifted so that some self-edits are kept and the generator trains.
  const shifted: Rewarder = { rewards: async (e) => (await inner.rewards(e)).map((r, i) => r + (i % 2 ? 1 : -1)) };
  const trainer = new SelfEditTrainer(model, tok, generator, { ...DEFAULT_OUTER, updateSteps: 2, sampling: { samples: 2, temperature: 1, maxNew: 8, seed: 1 } });
  const round = await trainer.step(PASSAGES, shifted, 1);
  assert.ok(round.used > 0 && Number.isFinite(round.loss));
  const after = await model.toArrays();
  for (const [n, a] of before) sameBits(after.get(n)!, a, n);
  trainer.release();
  inner.release();
  generator.release();
  model.release();
});

test('evaluation and the continual experiment: every method scored per seed, a lower-triangular forgetting matrix, the report written', async () => {
  const g = await gpu();
  const model = GPT2.init(g, { ...config, nCtx: 128 }, 5);
  const generator = Lora.create(model, { targets: ['h.0.mlp.c_fc.weight'], rank: 2, alpha: 4 }, 1);
  const o = { seeds: [1, 2], inner: { steps: 2, lr: 1e-2, lora: { targets: ['h.0.mlp.c_fc.weight'], rank: 2, alpha: 4 }, withPassage: false, seed: 1 }, sampling: { samples: 1, temperature: 1, maxNew: 8, seed: 1 } };
  const methods = [
    { name: 'no update', kind: 'none' as const },
    { name: 'passage', kind: 'passage' as const },
    { name: 'base self-edits', kind: 'self-edit' as const, generator: null },
    { name: 'generator', kind: 'self-edit' as const, generator },
  ];
  const results = await evaluateText(model, tok, PASSAGES, methods, o);
  assert.equal(results.map((r) => r.name), methods.map((m) => m.name));
  for (const r of results) {
    assert.is(r.nll.length, 2);
    assert.ok(r.nll.every(Number.isFinite) && r.em.every((e) => e >= 0 && e <= 1));
  }
  assert.is(results[0]!.msPerPassage, 0);
  assert.is(results[2]!.examples.length, PASSAGES.length);
  const cont = await continual(model, tok, PASSAGES, methods[1]!, o, 1);
  assert.ok(Number.isFinite(cont.nll[0]![0]!) && Number.isNaN(cont.nll[0]![1]!) && cont.nll[1]!.every(Number.isFinite));
  const dir = mkdtempSync(join(tmpdir(), 'text-report-'));
  const files = await writeTextReport(dir, { title: 't', setup: 's', methods: results, rounds: [{ round: 1, meanReward: 0.1, used: 2, samples: 4, loss: 1, seconds: 3 }], continual: { method: 'passage', result: cont } });
  assert.ok(files.some((f) => f.endsWith('forgetting-matrix.svg')));
  assert.match(readFileSync(join(dir, 'report.md'), 'utf8'), /\| base self-edits \|/);
  rmSync(dir, { recursive: true, force: true });
  generator.release();
  model.release();
});

test.run();
