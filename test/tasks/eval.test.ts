// Evaluation on a tiny random GPT-2 and two hand-written passages: numbers match direct
// computations, every baseline runs, the base weights keep their bits, and bad input is refused.
import { rejects } from 'node:assert/strict';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { F32 } from '../../src/gpu/tensor.ts';
import { byteTokenizer as tok } from '../../src/io/tokenizer.ts';
import type { GPT2Config } from '../../src/model/config.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { IGNORE_INDEX } from '../../src/ops/crossentropy.ts';
import * as ref from '../../src/reference/gpt2.ts';
import { resolveMask } from '../../src/model/mask.ts';
import {
  adapterMethod,
  baseMethod,
  evaluate,
  formatTable,
  inContextMethod,
  matchNorm,
  pickMethods,
  randomEditMethod,
  stat,
  type Method,
} from '../../src/tasks/eval.ts';
import { finetuneMethod } from '../../src/tasks/finetune.ts';
import { ForgettingProbe, generalNll, sampleLines } from '../../src/tasks/forgetting.ts';
import { answerText, questionPrompt } from '../../src/tasks/corpus.ts';
import { answerNll, exactMatch, greedyAnswers, mean } from '../../src/tasks/qa.ts';
import type { Passage } from '../../src/tasks/squad.ts';
import { PASSAGES } from '../fixtures/passages.ts';
import { close, gpu, releaseGpu, sameBits } from '../helpers.ts';

test.after(releaseGpu);

const config: GPT2Config = { vocabSize: 257, nCtx: 96, nLayer: 2, nHead: 2, nEmbd: 16 };
const GENERAL = ['The duck walks near the road.', 'In winter the rain makes the bridge quiet.', 'A bright chair stands by the basket.'];
const items = (p: Passage) => p.questions.map((q) => ({ question: q.question, answer: q.answers[0]! }));

/**
 * A question's mean answer-token NLL by the CPU reference: `before` (e.g. the passage), the prompt,
 * then the answer, scored on the answer tokens only. Written out here, apart from encodeQA.
 */
function referenceNll(params: Map<string, Float64Array>, q: Passage['questions'][number], before = ''): number {
  const prompt = tok.encode(before + questionPrompt(q.question));
  const ids = [...prompt, ...tok.encode(answerText(q.answers[0]!))];
  assert.ok(ids.length <= config.nCtx + 1, `'${q.question}' fits the context whole`);
  const targets = ids.slice(1).map((t, i) => (i + 1 >= prompt.length ? t : IGNORE_INDEX));
  return ref.forward(config, params, ids.slice(0, -1), targets, 1, ids.length - 1).loss;
}

async function fixture() {
  const g = await gpu();
  const model = GPT2.init(g, config, 11);
  const shapes = new Map([...model.params].map(([k, t]) => [k, t.shape]));
  // A row range, so the masked finetune and the random edit must leave part of the tensor alone.
  const mask = resolveMask(shapes, { tensors: ['h.1.mlp.c_proj.weight'], rows: [3, 40] });
  const forgetting = await ForgettingProbe.create(model, tok, GENERAL);
  return { g, model, mask, forgetting };
}

test('base and in-context NLL equal answerNll and the CPU reference with and without the passage; predictions are greedyAnswers', async () => {
  const { model, forgetting } = await fixture();
  const r = await evaluate(model, tok, PASSAGES, [baseMethod, inContextMethod], { forgetting, split: 'fixture' });
  const params = new Map([...(await model.toArrays())].map(([k, v]) => [k, Float64Array.from(v)]));
  for (const p of PASSAGES) {
    const base = r.runs.find((x) => x.method === 'base' && x.passage === p.id)!;
    const ctx = r.runs.find((x) => x.method === 'in-context' && x.passage === p.id)!;
    assert.equal(base.questionNll, Array.from(await answerNll(model, tok, items(p))));
    assert.equal(ctx.questionNll, Array.from(await answerNll(model, tok, items(p), { context: `${p.context}\n` })));
    const [want, wantCtx] = [p.questions.map((q) => referenceNll(params, q)), p.questions.map((q) => referenceNll(params, q, `${p.context}\n`))];
    const [rtol, atol] = [1e-4, 1e-5];
    close(base.questionNll, want, rtol, atol, 'base NLL vs the CPU reference');
    close(ctx.questionNll, wantCtx, rtol, atol, 'in-context NLL vs the CPU reference, passage first');
    // The passage moves each answer's NLL by over ten times the tolerance, so the checks tell the two apart.
    want.forEach((w, i) => assert.ok(Math.abs(wantCtx[i]! - w) > 10 * (rtol * w + atol), `the passage changes question ${i}'s NLL: ${w} vs ${wantCtx[i]}`));
    assert.is(base.nll, mean(base.questionNll));
    assert.equal(base.predictions, await greedyAnswers(model, tok, p.questions.map((q) => q.question)));
    assert.is(base.editNorm, 0);
    assert.is(base.forgetting, 0);
  }
  const summary = r.methods.find((m) => m.name === 'base')!;
  assert.is(summary.nll.mean, mean(r.runs.filter((x) => x.method === 'base').map((x) => x.nll)));
  assert.is(summary.nll.std, 0);
  assert.is(r.questions, 4);
  model.release();
});

test('exact match: SQuAD-normalised agreement with the greedy answer, averaged per passage', async () => {
  const { model, forgetting } = await fixture();
  const [question, other] = ['Who is Vel Orin?', 'Where is Tasby?'];
  const [predicted] = await greedyAnswers(model, tok, [question]);
  // Articles, case and punctuation are normalised away; an answer the model cannot give never matches.
  const passage: Passage = {
    id: 'em',
    title: 'em',
    context: 'x',
    questions: [
      { id: 'em-a', question, answers: [`The ${predicted!.toUpperCase()}!`] },
      { id: 'em-b', question: other, answers: ['\u00a7\u00a7 never'] },
    ],
  };
  const r = await evaluate(model, tok, [passage], [baseMethod], { forgetting });
  assert.is(r.runs[0]!.em, 0.5);
  assert.is(r.methods[0]!.em.mean, 0.5);
  model.release();
});

test('general-text NLL per line equals the CPU reference; forgetting is edited minus base', async () => {
  const { model, forgetting } = await fixture();
  const got = await generalNll(model, tok, GENERAL, undefined, 2);
  const params = new Map([...(await model.toArrays())].map(([k, v]) => [k, Float64Array.from(v)]));
  const want = GENERAL.map((l) => {
    const ids = [tok.eot, ...tok.encode(l)];
    return ref.forward(config, params, ids.slice(0, -1), ids.slice(1), 1, ids.length - 1).loss;
  });
  close(got, want, 1e-5, 1e-5, 'general NLL');
  close([forgetting.baseNll], [mean(want)], 1e-5, 1e-5, 'base general NLL');
  assert.is(await forgetting.measure(), 0);
  const same = new Map([['h.0.mlp.c_fc.weight', model.params.get('h.0.mlp.c_fc.weight')!]]);
  assert.is(await forgetting.measure(same), 0, 'overrides equal to the base forget nothing');
  // An edit: the probe (lines by length, from the shared prefix) gives a full pass's figure, bit for bit.
  const w = model.params.get('h.1.mlp.c_fc.weight')! as F32;
  const edited = new Map([['h.1.mlp.c_fc.weight', model.gpu.tensor((await model.gpu.read(w)).map((v, i) => v + 0.05 * Math.sin(i)), w.shape)]]);
  const change = await forgetting.measure(edited);
  assert.ok(change !== 0, 'the edit changes the general NLL');
  assert.is(change, mean(await generalNll(model, tok, GENERAL, edited)) - forgetting.baseNll);
  edited.forEach((t) => t.release());
  assert.equal(sampleLines(['a', 'b', 'c', 'd'], 2, 3), sampleLines(['a', 'b', 'c', 'd'], 2, 3));
  assert.is(sampleLines(['a', 'b', 'c', 'd'], 9, 3).length, 4);
  model.release();
});

test('random edit: requested norm, on the mask only, seeded', async () => {
  const { g, model, mask } = await fixture();
  const random = randomEditMethod(model, mask.entries, 0.75);
  const base = await g.read(model.params.get('h.1.mlp.c_proj.weight')!);
  const read = async (seed: number) => {
    const a = await random.adapt(PASSAGES[0]!, seed);
    const w = await g.read(a.overrides!.get('h.1.mlp.c_proj.weight')!);
    a.release();
    return { w, norm: a.editNorm };
  };
  const [one, again, two] = [await read(1), await read(1), await read(2)];
  close([one.norm], [0.75], 1e-5, 0, 'edit norm');
  sameBits(one.w, again.w, 'same seed');
  assert.ok(one.w.some((x, i) => x !== two.w[i]), 'another seed, another direction');
  const C = config.nEmbd;
  let sq = 0;
  one.w.forEach((x, i) => {
    const row = Math.floor(i / C);
    if (row < 3 || row >= 40) assert.is(x, base[i], `outside the mask at [${i}]`);
    else sq += (x - base[i]!) ** 2;
  });
  close([Math.sqrt(sq)], [0.75], 1e-4, 0, "CPU ‖θ' − θ‖");
  model.release();
});

test('every baseline runs; seeds give mean ± std; the base bits and the tensor count are unchanged', async () => {
  const { g, model, mask } = await fixture();
  const before = await model.toArrays();
  const live = g.liveTensors;
  // Its own probe: a probe keeps the lines' shared prefixes until released.
  const forgetting = await ForgettingProbe.create(model, tok, GENERAL);
  const ft = matchNorm(finetuneMethod(model, tok, mask, { steps: 3, lr: 1e-2 }));
  const methods: Method[] = [baseMethod, inContextMethod, ft.method, finetuneMethod(model, tok, 'full', { steps: 2, lr: 1e-3 }), randomEditMethod(model, mask.entries, ft.norm)];
  const progress: number[] = [];
  // Tasby's answers are the base model's own greedy answers, so base EM is known: 1 there.
  const guessed = await greedyAnswers(model, tok, PASSAGES[1]!.questions.map((q) => q.question), { maxNew: 6 });
  const passages = [PASSAGES[0]!, { ...PASSAGES[1]!, questions: PASSAGES[1]!.questions.map((q, i) => ({ ...q, answers: [guessed[i]!] })) }];
  const r = await evaluate(model, tok, passages, methods, { forgetting, seeds: [1, 2], maxNew: 6, onProgress: (done) => progress.push(done) });
  assert.equal(r.methods.map((m) => m.name), ['base', 'in-context', 'finetune-mask', 'finetune-full', 'random']);
  assert.equal(r.methods.map((m) => m.seeds.length), [1, 1, 1, 1, 2]);
  assert.is(r.runs.length, 2 * 6);
  assert.equal(progress, [...Array(12).keys()].map((i) => i + 1));
  // The random edit has the finetune's norm, passage by passage.
  for (const p of PASSAGES) {
    const ftNorm = r.runs.find((x) => x.method === 'finetune-mask' && x.passage === p.id)!.editNorm;
    assert.ok(ftNorm > 0);
    for (const x of r.runs.filter((x) => x.method === 'random' && x.passage === p.id)) close([x.editNorm], [ftNorm], 1e-5, 0, 'matched norm');
  }
  const rnd = r.methods.find((m) => m.name === 'random')!;
  const perSeed = [1, 2].map((s) => mean(r.runs.filter((x) => x.method === 'random' && x.seed === s).map((x) => x.nll)));
  close([rnd.nll.mean, rnd.nll.std], [stat(perSeed).mean, Math.abs(perSeed[0]! - perSeed[1]!) / Math.SQRT2], 1e-12, 1e-12, 'random mean ± std');
  assert.ok(rnd.nll.std > 0);
  // EM per run is the share of its predictions that match; per method, the mean over passages (and seeds).
  for (const x of r.runs) {
    const p = passages.find((q) => q.id === x.passage)!;
    assert.is(x.em, mean(p.questions.map((q, i) => (exactMatch(x.predictions[i]!, q.answers) ? 1 : 0))), `${x.method} EM on ${p.title}`);
  }
  const em = (name: string, passage = passages[1]!.id) => r.runs.find((x) => x.method === name && x.passage === passage)!.em;
  assert.is(em('base'), 1);
  assert.is(r.methods[0]!.em.mean, (em('base', passages[0]!.id) + 1) / 2);
  for (const m of r.methods) {
    assert.ok(Number.isFinite(m.nll.mean) && Number.isFinite(m.msPerPassage), m.name);
    const edits = m.name !== 'base' && m.name !== 'in-context';
    assert.is(m.editNorm.mean > 0, edits, `${m.name} edit norm`);
    assert.is(m.forgetting.mean !== 0, edits, `${m.name} forgetting`);
  }
  const table = formatTable(r);
  for (const name of ['base', 'in-context', 'finetune-mask', 'finetune-full', 'random']) assert.match(table, new RegExp(`^${name} `, 'm'));
  const after = await model.toArrays();
  for (const [name, a] of before) sameBits(after.get(name)!, a, name);
  forgetting.release();
  assert.is(g.liveTensors, live, `leaked: ${g.liveLabels().slice(live).join(', ')}`);
  model.release();
});

test('an inference-time adapter plugs in as a method: its overrides and norm are what gets scored', async () => {
  const { model, mask, forgetting } = await fixture();
  // A stand-in for SEAL's Adapter: a fixed random edit, whatever the text (which it records).
  const random = randomEditMethod(model, mask.entries, 0.5);
  const seen: string[] = [];
  const fixed = await random.adapt(PASSAGES[0]!, 9);
  const seal = adapterMethod('seal', { adapt: async (text) => (seen.push(text), { overrides: fixed.overrides!, editNorm: fixed.editNorm }) });
  const r = await evaluate(model, tok, PASSAGES, [seal], { forgetting });
  assert.equal(seen, PASSAGES.map((p) => p.context));
  for (const p of PASSAGES) {
    const run = r.runs.find((x) => x.passage === p.id)!;
    assert.equal(run.questionNll, Array.from(await answerNll(model, tok, items(p), { overrides: fixed.overrides! })));
    close([run.editNorm], [0.5], 1e-5, 0, 'norm');
  }
  assert.ok(r.methods[0]!.forgetting.mean !== 0);
  assert.not.ok(fixed.overrides!.get('h.1.mlp.c_proj.weight')!.released, 'the adapter owns its overrides');
  fixed.release();
  model.release();
});

test('bad input: empty split, a passage without questions, unknown or repeated methods, no seeds', async () => {
  const { model, forgetting } = await fixture();
  await rejects(() => evaluate(model, tok, [], [baseMethod], { forgetting }), /no passages/);
  const bare = { ...PASSAGES[0]!, id: '7.0', questions: [] };
  await rejects(() => evaluate(model, tok, [PASSAGES[1]!, bare], [baseMethod], { forgetting }), new RegExp(`passage '${bare.title}' paragraph 0 has no questions`));
  await rejects(() => evaluate(model, tok, PASSAGES, [], { forgetting }), /no methods/);
  await rejects(() => evaluate(model, tok, PASSAGES, [baseMethod, baseMethod], { forgetting }), /two methods are named 'base'/);
  await rejects(() => evaluate(model, tok, PASSAGES, [baseMethod], { forgetting, seeds: [] }), /seeds/);
  await rejects(() => ForgettingProbe.create(model, tok, []), /no general-text lines/);
  const available = new Map<string, () => Method>([
    ['base', () => baseMethod],
    ['in-context', () => inContextMethod],
  ]);
  assert.throws(() => pickMethods(['base', 'seal', 'magic'], available), /unknown methods 'seal', 'magic' \(known: base, in-context\)/);
  assert.equal(pickMethods(['in-context', 'base'], available), [inContextMethod, baseMethod]);
  const unmatched = randomEditMethod(model, resolveMask(new Map([['w', [4, 4]]]), { tensors: ['w'] }).entries, matchNorm(baseMethod).norm);
  await rejects(() => unmatched.adapt(PASSAGES[0]!, 1), /no base edit norm recorded for passage 0\.0/);
  assert.throws(() => randomEditMethod(model, [], 1), /no tensors/);
  model.release();
});

test.run();
