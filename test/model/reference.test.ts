// The CPU reference GPT-2 is what the GPU model is checked against, so it is checked first: every
// parameter's gradient against central finite differences of its own loss, in f64.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { paramSpecs, validateConfig, type GPT2Config } from '../../src/model/config.ts';
import { IGNORE, forward, initParams } from '../../src/reference/gpt2.ts';
import { Rng } from '../../src/util/random.ts';
import { numericGrad } from '../helpers.ts';

const config: GPT2Config = { vocabSize: 11, nCtx: 6, nLayer: 2, nHead: 2, nEmbd: 6 };

test('every parameter gradient matches finite differences', async () => {
  const rng = new Rng(9);
  const params = initParams(config, rng);
  // Larger weights than GPT-2's 0.02 so that every path carries a signal the check can see.
  for (const p of params.values()) for (let i = 0; i < p.length; i++) p[i]! += 0.3 * rng.normal();
  const [B, T] = [2, 5];
  const tokens = Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const targets = tokens.map((_, i) => (i % 4 === 1 ? IGNORE : rng.int(config.vocabSize)));
  const grads = forward(config, params, tokens, targets, B, T).backward();
  for (const { name } of paramSpecs(config)) {
    const p = params.get(name)!;
    // A sample of entries per tensor keeps the test fast; all of them for the small ones.
    const idx = p.length <= 12 ? [...p.keys()] : Array.from({ length: 12 }, () => rng.int(p.length));
    const num = await numericGrad((x) => {
      params.set(name, x as Float64Array);
      return forward(config, params, tokens, targets, B, T).loss;
    }, p, 1e-5, idx);
    params.set(name, p);
    for (const i of idx) {
      const a = grads.get(name)![i]!;
      const e = num[i]!;
      assert.ok(Math.abs(a - e) <= 1e-6 + 1e-5 * Math.abs(e), `${name}[${i}]: analytic ${a}, numeric ${e}`);
    }
  }
});

test('ignored targets carry no loss; all-ignored gives zero loss and zero gradient', () => {
  const params = initParams(config, new Rng(1));
  const tokens = [1, 2, 3];
  const r = forward(config, params, tokens, [IGNORE, IGNORE, IGNORE], 1, 3);
  assert.is(r.loss, 0);
  const g = r.backward();
  assert.ok([...g.values()].every((a) => a.every((v) => v === 0)));
});

test('a fresh model predicts close to uniform', () => {
  const params = initParams(config, new Rng(2));
  const r = forward(config, params, [1, 2, 3, 4], [2, 3, 4, 5], 1, 4);
  assert.ok(Math.abs(r.loss - Math.log(config.vocabSize)) < 0.1, `loss ${r.loss} vs ln V ${Math.log(config.vocabSize)}`);
});

test('bad configs and tokens are named', () => {
  assert.throws(() => validateConfig({ ...config, nEmbd: 7 }), /divisible by nHead/);
  assert.throws(() => validateConfig({ ...config, nLayer: 0 }), /nLayer must be a positive integer/);
  const params = initParams(config, new Rng(3));
  assert.throws(() => forward(config, params, [1, 99], [1, 2], 1, 2), /token 99 at 1 is outside the vocabulary/);
});

test.run();
