// A model's tokenizer.json through Tokenizers.js: round trips, the end-of-text id from
// tokenizer_config.json, and named errors for what a broken folder holds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteLevelTokenizerJson, hfTokenizer } from '../../src/io/hf-tokenizer.ts';
import { UserError } from '../../src/util/errors.ts';

const TEXTS = ['', 'Hello world', 'Where was Tamo Ravelin born?\nIn Dravesk, in 1843.', 'naïve café — 日本語 🌍 𝄞', ' leading and  double  spaces\t'];

test('a byte-level BPE tokenizer.json: round trips, merges, vocabulary size and end-of-text', () => {
  const { json, config } = byteLevelTokenizerJson(1000);
  const tok = hfTokenizer(json, config, 'test');
  assert.is(tok.vocabSize, 1000);
  assert.is(tok.eot, 0);
  for (const text of TEXTS) {
    const ids = tok.encode(text);
    assert.ok(ids.every((id) => id > 0 && id < 1000), `ids of ${JSON.stringify(text)}`);
    assert.is(tok.decode(ids), text);
  }
  assert.is(tok.encode('the').length, 2, "'th' is merged");
  assert.is(tok.decode([...tok.encode('a'), tok.eot]), 'a<|endoftext|>');
  assert.throws(() => tok.decode([1000]), /id 1000 at \[0\] is outside 0\.\.999/);
});

test('named errors: no end-of-text token, a JSON that is no tokenizer', () => {
  const { json } = byteLevelTokenizerJson(300);
  assert.throws(() => hfTokenizer(json, { eos_token: '</s>' }, 'x/tokenizer.json'), (e: Error) => e instanceof UserError && /no end-of-text token \(tokenizer_config.json's eos_token '<\/s>' is not in the vocabulary\)/.test(e.message));
  assert.throws(() => hfTokenizer({ model: { type: 'Nonsense' } }, {}, 'y/tokenizer.json'), (e: Error) => e instanceof UserError && /y\/tokenizer\.json/.test(e.message));
});

test.run();
