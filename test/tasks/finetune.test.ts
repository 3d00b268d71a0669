// The finetune baseline: one AdamW step is −lr·ĝ/(|ĝ| + ε) on the mask and nothing elsewhere,
// more steps lower the passage loss, the reported edit norm is ‖θ' − θ‖, and the base keeps its bits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteTokenizer as tok } from '../../src/io/tokenizer.ts';
import type { F32 } from '../../src/gpu/tensor.ts';
import type { GPT2Config } from '../../src/model/config.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { resolveMask } from '../../src/model/mask.ts';
import { passageBatch } from '../../src/tasks/corpus.ts';
import { finetuneMethod, scopeMask } from '../../src/tasks/finetune.ts';
import type { Passage } from '../../src/tasks/squad.ts';
import { close, gpu, releaseGpu, sameBits } from '../helpers.ts';

test.after(releaseGpu);

const config: GPT2Config = { vocabSize: 257, nCtx: 32, nLayer: 2, nHead: 2, nEmbd: 16 };
const PASSAGE: Passage = {
  id: '0.0',
  title: 'Vel Orin',
  // Longer than the context: the batch has several rows.
  context: 'Vel Orin is a baker in Tasby. Vel Orin plays the harp. The flag of Tasby is blue.',
  questions: [{ id: 'q-a', question: 'What is Vel Orin?', answers: ['baker'] }],
};
const NAME = 'h.1.mlp.c_proj.weight';

const cpuNorm = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) => {
  let sq = 0;
  for (const [k, x] of a) x.forEach((v, i) => (sq += (v - b.get(k)![i]!) ** 2));
  return Math.sqrt(sq);
};

/** The mean LM loss on the passage, the objective the finetune lowers. */
async function passageLoss(model: GPT2, overrides?: ReadonlyMap<string, F32>): Promise<number> {
  const g = model.gpu;
  const b = passageBatch(tok, PASSAGE.context, config.nCtx);
  const [tokens, targets] = [g.tensor(b.tokens, [b.B, b.T]), g.tensor(b.targets, [b.B, b.T])];
  const pass = model.forward(tokens, targets, overrides);
  const loss = await g.scalar(pass.loss!);
  for (const t of [pass, tokens, targets]) t.release();
  return loss;
}

test('passageBatch predicts every token after end-of-text exactly once', () => {
  const text = 'abcdefghij';
  const b = passageBatch(tok, text, 4);
  assert.equal([b.B, b.T], [3, 4]);
  const targets = Array.from(b.targets).filter((t) => t !== 0xffffffff);
  assert.is(String.fromCharCode(...targets), text);
  assert.equal(Array.from(b.tokens.subarray(0, 4)), [tok.eot, ...tok.encode('abc')]);
  assert.throws(() => passageBatch(tok, '', 4), /empty/);
});

test('one masked step is the first Adam step on the clipped gradient inside the mask rows, the base elsewhere', async () => {
  const g = await gpu();
  const model = GPT2.init(g, config, 3);
  const shapes = new Map([...model.params].map(([k, t]) => [k, t.shape]));
  const mask = resolveMask(shapes, { tensors: [NAME], rows: [5, 50] });
  const lr = 1e-3;
  // The gradient at the base, from a plain forward/backward on the same batch.
  const b = passageBatch(tok, PASSAGE.context, config.nCtx);
  const [tokens, targets] = [g.tensor(b.tokens, [b.B, b.T]), g.tensor(b.targets, [b.B, b.T])];
  const grads = model.zerosLike();
  const pass = model.forward(tokens, targets);
  pass.backward(grads);
  const grad = await g.read(grads.get(NAME)!);
  pass.release();
  for (const t of [tokens, targets, ...grads.values()]) t.release();

  const base = await g.read(model.params.get(NAME)!);
  const a = await finetuneMethod(model, tok, mask, { steps: 1, lr, gradClip: 1 }).adapt(PASSAGE, 1);
  assert.equal([...a.overrides!.keys()], [NAME]);
  const w = await g.read(a.overrides!.get(NAME)!);
  const C = config.nEmbd;
  const inMask = (i: number) => Math.floor(i / C) >= 5 && Math.floor(i / C) < 50;
  let gsq = 0;
  grad.forEach((x, i) => inMask(i) && (gsq += x * x));
  const clip = Math.min(1, 1 / (Math.sqrt(gsq) + 1e-6));
  let sq = 0;
  w.forEach((x, i) => {
    if (!inMask(i)) return assert.is(x, base[i], `outside the mask at [${i}]`);
    // Adam's first bias-corrected step: m̂/(√v̂ + ε) = ĝ/(|ĝ| + ε), ĝ the clipped gradient.
    const gc = clip * grad[i]!;
    close([x - base[i]!], [(-lr * gc) / (Math.abs(gc) + 1e-8)], 1e-4, 1e-8, `step at [${i}]`);
    sq += (x - base[i]!) ** 2;
  });
  close([a.editNorm], [Math.sqrt(sq)], 1e-4, 0, 'edit norm');
  a.release();
  model.release();
});

test('k steps lower the passage loss, masked and full; edit norms are ‖θ′ − θ‖; the base keeps its bits', async () => {
  const g = await gpu();
  const model = GPT2.init(g, config, 4);
  const before = await model.toArrays();
  const live = g.liveTensors;
  const shapes = new Map([...model.params].map(([k, t]) => [k, t.shape]));
  const mask = resolveMask(shapes, { tensors: ['h.*.mlp.c_proj.weight'] });
  const baseLoss = await passageLoss(model);
  for (const [scope, steps] of [[mask, 8], ['full', 4]] as const) {
    const method = finetuneMethod(model, tok, scope, { steps, lr: 3e-3 });
    const a = await method.adapt(PASSAGE, 1);
    const names = [...a.overrides!.keys()];
    assert.equal(names, scopeMask(model, scope).entries.map((e) => e.name), method.name);
    const arrays = await g.readMany(names.map((n) => a.overrides!.get(n)!));
    const got = new Map(names.map((n, i) => [n, arrays[i] as Float32Array]));
    close([a.editNorm], [cpuNorm(got, before)], 1e-4, 0, `${method.name} edit norm`);
    const loss = await passageLoss(model, a.overrides);
    assert.ok(loss < baseLoss - 0.05, `${method.name}: loss ${loss} vs base ${baseLoss}`);
    a.release();
  }
  const after = await model.toArrays();
  for (const [name, x] of before) sameBits(after.get(name)!, x, name);
  assert.is(g.liveTensors, live, `leaked: ${g.liveLabels().slice(live).join(', ')}`);
  model.release();
});

test('bad options are refused by name', async () => {
  const g = await gpu();
  const model = GPT2.init(g, config, 5);
  assert.throws(() => finetuneMethod(model, tok, 'full', { steps: 0 }), /steps \(k\) must be an integer ≥ 1, got 0/);
  assert.throws(() => finetuneMethod(model, tok, 'full', { steps: 2.5 }), /steps \(k\)/);
  assert.throws(() => finetuneMethod(model, tok, 'full', { lr: -1 }), /lr must be a positive number/);
  assert.throws(() => finetuneMethod(model, tok, 'full', { weightDecay: -1 }), /weightDecay and gradClip/);
  model.release();
});

test.run();
