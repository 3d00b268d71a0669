import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { paramSpecs } from '../../src/model/config.ts';
import { parseRange, resolveMask } from '../../src/model/mask.ts';

const shapes = new Map(paramSpecs({ vocabSize: 11, nCtx: 8, nLayer: 3, nHead: 2, nEmbd: 4 }).map((p) => [p.name, p.shape]));

test('one tensor, whole', () => {
  const m = resolveMask(shapes, { tensors: ['h.1.mlp.c_proj.weight'] });
  assert.is(m.paramDim, 16 * 4);
  assert.equal(m.entries.map((e) => e.name), ['h.1.mlp.c_proj.weight']);
});

test('globs keep the model order; packed offsets follow', () => {
  const m = resolveMask(shapes, { tensors: ['h.*.mlp.c_fc.bias', 'h.0.ln_1.*'] });
  assert.equal(m.entries.map((e) => e.name), ['h.0.ln_1.weight', 'h.0.ln_1.bias', 'h.0.mlp.c_fc.bias', 'h.1.mlp.c_fc.bias', 'h.2.mlp.c_fc.bias']);
  assert.equal(m.entries.map((e) => e.offset), [0, 4, 8, 24, 40]);
  assert.is(m.paramDim, 56);
  assert.is(resolveMask(shapes, { tensors: ['**.bias'] }).entries.length, 3 * 6 + 1);
});

test('row and column ranges', () => {
  const m = resolveMask(shapes, { tensors: ['h.2.attn.c_proj.weight'], rows: [1, 3], cols: [0, 2] });
  assert.is(m.paramDim, 4);
  assert.equal(m.entries[0]!.block, { start: 4, run: 2, stride: 4, runs: 2 });
  assert.equal(parseRange('0:16'), [0, 16]);
  assert.throws(() => parseRange('3-4'), /START:END/);
});

test('bad masks are named', () => {
  assert.throws(() => resolveMask(shapes, { tensors: [] }), /no tensors given/);
  assert.throws(() => resolveMask(shapes, { tensors: ['h.1.mlp.c_proj.weigth'] }), /matches no tensor.*did you mean h\.1\.mlp\.c_proj\.weight/);
  assert.throws(() => resolveMask(shapes, { tensors: ['h.9.*'] }), /matches no tensor/);
  assert.throws(() => resolveMask(shapes, { tensors: ['h.0.mlp.c_proj.weight'], rows: [0, 99] }), /outside a 16×4 matrix/);
  assert.throws(() => resolveMask(shapes, { tensors: ['h.0.mlp.c_proj.weight'], rows: [2, 2] }), /select no parameter/);
});

test.run();
