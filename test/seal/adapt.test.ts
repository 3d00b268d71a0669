// seal adapt's library side: an edit written alone is θ' − θ of exactly the masked tensors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withSafetensors } from '../../src/io/safetensors.ts';
import { byteTokenizer } from '../../src/io/tokenizer.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { Adapter, editDeltas, writeEdit } from '../../src/seal/adapt.ts';
import { resolveConfig } from '../../src/seal/config.ts';
import { tuneFixedStep } from '../../src/cli/tune.ts';
import { answerNll, mean } from '../../src/tasks/qa.ts';
import { PASSAGES } from '../fixtures/passages.ts';
import { gpu, releaseGpu, sameBits } from '../helpers.ts';

test.after(releaseGpu);
const dir = mkdtempSync(join(tmpdir(), 'seal-adapt-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('editDeltas and writeEdit give θ′ − θ of the masked tensors, bit for bit', async () => {
  const g = await gpu();
  const model = GPT2.init(g, { vocabSize: 257, nCtx: 32, nLayer: 1, nHead: 2, nEmbd: 16 }, 5);
  const adapter = Adapter.fixedStep(model, byteTokenizer, resolveConfig({}), 'grad', 0.5);
  const { overrides } = await adapter.adapt('The lighthouse keeper of Varn paints the tower green every spring.');
  const names = [...overrides.keys()];
  assert.equal(names, adapter.writer.mask.entries.map((e) => e.name));
  const deltas = await editDeltas(model, overrides);
  const path = join(dir, 'edit.safetensors');
  await writeEdit(path, model, overrides);
  await withSafetensors(path, async (f) => {
    assert.is(f.metadata.format, 'seal-webgpu/edit');
    assert.equal(f.names, names);
    for (const name of names) {
      const [edited, base] = (await g.readMany([overrides.get(name)!, model.params.get(name)!])) as Float32Array[];
      const expected = edited!.map((v, i) => v - base![i]!);
      assert.ok(expected.some((v) => v !== 0), `${name} moved`);
      sameBits(deltas.get(name)!.data as Float32Array, expected, `editDeltas ${name}`);
      sameBits(await f.get(name, deltas.get(name)!.shape), expected, `written ${name}`);
    }
  });
  adapter.release();
  model.release();
});

test('the fixed-step sweep (features once per passage) scores each size as the fixed-step adapter does', async () => {
  const g = await gpu();
  const model = GPT2.init(g, { vocabSize: 257, nCtx: 96, nLayer: 2, nHead: 2, nEmbd: 16 }, 7);
  const config = resolveConfig({});
  const sizes = [0.5, 2];
  const swept = await tuneFixedStep(model, byteTokenizer, config, PASSAGES, 'sign', sizes);
  for (const [i, size] of sizes.entries()) {
    const adapter = Adapter.fixedStep(model, byteTokenizer, config, 'sign', size);
    const per: number[] = [];
    for (const p of PASSAGES) {
      const { overrides } = await adapter.adapt(p.context);
      per.push(mean(Array.from(await answerNll(model, byteTokenizer, p.questions.map((q) => ({ question: q.question, answer: q.answers[0]! })), { overrides }))));
    }
    adapter.release();
    assert.is(swept.results[i]!.nll, mean(per), `size ${size}`);
  }
  assert.ok(swept.results[0]!.nll !== swept.results[1]!.nll, 'the sizes score differently');
  model.release();
});

test.run();
