// seal train's config: without a mask (flag or config file) the edit covers every MLP weight matrix
// of the model's own family, read from a Hugging Face folder's config.json.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configFromFlags } from '../../src/cli/train.ts';
import { DEFAULT_SEAL } from '../../src/seal/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'train-config-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the default mask follows the model family; a given mask wins', async () => {
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'qwen2' }));
  assert.equal((await configFromFlags({})).mask, DEFAULT_SEAL.mask);
  assert.equal((await configFromFlags({ model: dir })).mask.tensors, ['model.layers.*.mlp.gate_proj.weight', 'model.layers.*.mlp.up_proj.weight', 'model.layers.*.mlp.down_proj.weight']);
  assert.equal((await configFromFlags({ model: dir, mask: 'model.layers.0.mlp.up_proj.weight' })).mask.tensors, ['model.layers.0.mlp.up_proj.weight']);
  const file = join(dir, 'seal.json');
  writeFileSync(file, JSON.stringify({ mask: { tensors: ['lm_head.weight'] } }));
  assert.equal((await configFromFlags({ model: dir }, file)).mask.tensors, ['lm_head.weight']);
});

test.run();
