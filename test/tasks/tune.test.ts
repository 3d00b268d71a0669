// Tuning on a tiny random GPT-2: a step count scored inside the longest run equals a run of that
// many steps, the chosen cell is the table's minimum (ties to fewer steps), results survive JSON,
// and bad grids are refused by name.
import { rejects } from 'node:assert/strict';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteTokenizer as tok } from '../../src/io/tokenizer.ts';
import type { GPT2Config } from '../../src/model/config.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { resolveMask } from '../../src/model/mask.ts';
import { finetuneMethod } from '../../src/tasks/finetune.ts';
import { answerNll, mean } from '../../src/tasks/qa.ts';
import { tuneFinetune, tuneScalar } from '../../src/tasks/tune.ts';
import { PASSAGES } from '../fixtures/passages.ts';
import { gpu, releaseGpu } from '../helpers.ts';

test.after(releaseGpu);

const config: GPT2Config = { vocabSize: 257, nCtx: 48, nLayer: 2, nHead: 2, nEmbd: 16 };

async function fixture() {
  const g = await gpu();
  const model = GPT2.init(g, config, 21);
  const mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), { tensors: ['h.1.mlp.c_proj.weight'] });
  return { g, model, mask };
}

/** The validation score of a separate k-step finetune, as eval scores a method. */
async function separateRun(model: GPT2, scope: Parameters<typeof finetuneMethod>[2], lr: number, steps: number): Promise<number> {
  const method = finetuneMethod(model, tok, scope, { lr, steps });
  const perPassage: number[] = [];
  for (const p of PASSAGES) {
    const a = await method.adapt(p, 1);
    perPassage.push(mean(await answerNll(model, tok, p.questions.map((q) => ({ question: q.question, answer: q.answers[0]! })), { overrides: a.overrides! })));
    a.release();
  }
  return mean(perPassage);
}

test('a step count scored inside the longest run equals a separate run of that many steps; best is the minimum', async () => {
  const { g, model, mask } = await fixture();
  const live = g.liveTensors;
  for (const scope of [mask, 'full'] as const) {
    const progress: [number, number][] = [];
    const grid = { lr: [1e-3, 1e-2], steps: [4, 1, 2] };
    const r = await tuneFinetune(model, tok, PASSAGES, scope, grid, (done, total) => progress.push([done, total]));
    assert.equal(progress, [1, 2, 3, 4].map((d) => [d, 4]));
    assert.equal(r.cells.map((c) => [c.lr, c.steps]), grid.lr.flatMap((lr) => grid.steps.map((k) => [lr, k])));
    for (const c of r.cells) {
      const alone = await separateRun(model, scope, c.lr, c.steps);
      assert.ok(Math.abs(c.nll - alone) <= 1e-6, `${r.scope} lr ${c.lr}, ${c.steps} steps: ${c.nll} in the sweep, ${alone} alone`);
    }
    assert.is(new Set(r.cells.map((c) => c.nll)).size, r.cells.length, 'every cell scores differently, so the equalities above say something');
    assert.is(r.best.nll, Math.min(...r.cells.map((c) => c.nll)));
    assert.is(r.scope, scope === 'full' ? 'full' : 'mask');
    assert.equal(r.passages, ['0.0', '1.0']);
    assert.ok(r.ms > 0);
    assert.equal(JSON.parse(JSON.stringify(r)), r, 'JSON round trip');
  }
  assert.is(g.liveTensors, live, `leaked: ${g.liveLabels().slice(live).join(', ')}`);
  model.release();
});

test('equal NLLs go to fewer steps', async () => {
  const { model, mask } = await fixture();
  // Steps of 1e-30 vanish when added to weights of order 0.1: every cell scores the base exactly.
  const r = await tuneFinetune(model, tok, PASSAGES, mask, { lr: [1e-30], steps: [3, 2] });
  assert.is(r.cells[0]!.nll, r.cells[1]!.nll, 'the cells tie');
  assert.equal(r.best, r.cells[1]);
  model.release();
});

test('bad grids and inputs are refused by name', async () => {
  const { model, mask } = await fixture();
  const tune = (grid: { lr: number[]; steps: number[] }, passages = PASSAGES) => tuneFinetune(model, tok, passages, mask, grid);
  await rejects(tune({ lr: [], steps: [1] }), /at least one lr and one step count, got 0 and 1/);
  await rejects(tune({ lr: [1e-3], steps: [] }), /at least one lr and one step count, got 1 and 0/);
  for (const lr of [0, -1e-3, NaN, Infinity]) await rejects(tune({ lr: [1e-3, lr], steps: [1] }), /every lr must be a positive number/);
  for (const k of [2.5, 0, -1]) await rejects(tune({ lr: [1e-3], steps: [1, k] }), /every step count must be an integer ≥ 1/);
  await rejects(tune({ lr: [1e-3, 1e-3], steps: [1] }), /lists an lr or a step count twice/);
  await rejects(tune({ lr: [1e-3], steps: [1] }, []), /no passages/);
  await rejects(tune({ lr: [1e-3], steps: [1] }, [{ ...PASSAGES[0]!, questions: [] }]), /passage 0.0 has no questions/);
  model.release();
});

test('tuneScalar scores every value in order and keeps the first lowest; NaN never wins', async () => {
  const seen: number[] = [];
  const nll = new Map([[0, 2], [1, 1.5], [2, NaN], [3, 1.5], [4, 3]]);
  const r = await tuneScalar([0, 1, 2, 3, 4], async (vs) => vs.map((v) => (seen.push(v), nll.get(v)!)));
  assert.equal(seen, [0, 1, 2, 3, 4]);
  assert.equal(r.results.map((x) => x.nll), [2, 1.5, NaN, 1.5, 3]);
  assert.equal(r.best, { value: 1, nll: 1.5 });
  await rejects(tuneScalar([], async () => []), /no values/);
  await rejects(tuneScalar([1, Infinity], async (vs) => vs.map(() => 0)), /finite number, got Infinity/);
  await rejects(tuneScalar([1, 2], async (vs) => vs.map(() => NaN)), /every setting scored NaN/);
});

test.run();
