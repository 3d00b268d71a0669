// Context features see the whole passage: a fact past the first context window moves them, the
// directions are unit vectors of the gradient (and its sign) at the mask, and the Gram matrix and
// norms the edits use agree with the directions themselves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteTokenizer } from '../../src/io/tokenizer.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { passageFeatures } from '../../src/seal/features.ts';
import { resolveMask } from '../../src/model/mask.ts';
import { close, gpu, releaseGpu, sameBits } from '../helpers.ts';

test.after(releaseGpu);

const tiny = { vocabSize: 257, nCtx: 32, nLayer: 1, nHead: 2, nEmbd: 16 };
const head = 'Here are a few facts about Quorvel Banth, a person of some note. ';
// Both answers lie past byte 64, two windows in.
const withFact = (year: string) => `${head}${head}Quorvel Banth was born in ${year} in Marrow.`;

test('a fact past the first context window changes the features', async () => {
  const g = await gpu();
  const model = GPT2.init(g, tiny, 5);
  const mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), { tensors: ['h.0.mlp.c_fc.weight', 'h.0.mlp.c_proj.weight'] });
  const spec = { kinds: ['grad', 'sign'] as const, lookahead: 0 };
  const a = await passageFeatures(model, byteTokenizer, withFact('1911'), 0, mask, spec);
  const b = await passageFeatures(model, byteTokenizer, withFact('1874'), 0, mask, spec);
  const diff = (x: ArrayLike<number>, y: ArrayLike<number>) => Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i]!)));
  assert.ok(withFact('1911').indexOf('1911') > 2 * tiny.nCtx, 'the fact is past the first two windows');
  assert.ok(diff(a.pooled, b.pooled) > 1e-4, 'pooled features moved');
  const [da, db] = [await g.read(a.directions[0]!), await g.read(b.directions[0]!)];
  const a0Directions = g.tensor(da as Float32Array, a.directions[0]!.shape);
  assert.ok(diff(da, db) > 1e-4, 'gradient directions moved');

  // Unit directions; Gram and norms consistent with them.
  for (const [k, e] of mask.entries.entries()) {
    const d = (await g.read(a.directions[k]!)) as Float32Array;
    const [grad, sign] = [d.subarray(0, e.size), d.subarray(e.size)];
    const dot = (x: Float32Array, y: Float32Array) => x.reduce((s, v, i) => s + v * y[i]!, 0);
    close([dot(grad, grad), dot(sign, sign), dot(grad, sign)], [a.gram[k]![0]!, a.gram[k]![3]!, a.gram[k]![1]!], 1e-4, 1e-5, `gram ${e.name}`);
    close([a.gram[k]![0]!, a.gram[k]![3]!], [1, 1], 1e-4, 1e-5, 'unit');
    assert.ok(grad.every((v, i) => Math.sign(v) === Math.sign(sign[i]!)), 'sign direction has the gradient direction’s signs');
    assert.ok(a.norms[k]![0]! > 0 && Math.abs(a.norms[k]![1]! - Math.sqrt(grad.filter((v) => v !== 0).length)) < 1e-3, 'norms before normalising');
  }
  a.release();
  b.release();

  // A lookahead adds the same kinds from the gradient after a probe step: new unit directions
  // after the base ones, which stay as they were.
  const c = await passageFeatures(model, byteTokenizer, withFact('1911'), 0, mask, { kinds: ['grad', 'sign'], lookahead: 4 });
  const [d0, d1] = [(await g.read(c.directions[0]!)) as Float32Array, (await g.read(a0Directions)) as Float32Array];
  const n = mask.entries[0]!.size;
  assert.equal(c.directions[0]!.shape, [4, n]);
  sameBits(d0.subarray(0, 2 * n), d1, 'base rows unchanged');
  close([c.gram[0]![2 * 4 + 2]!, c.gram[0]![3 * 4 + 3]!], [1, 1], 1e-4, 1e-5, 'lookahead rows are unit');
  assert.ok(diff(d0.subarray(2 * n, 3 * n), d0.subarray(0, n)) > 1e-4, 'the gradient after the probe step differs');
  c.release();
  a0Directions.release();
  model.release();
});

test.run();
