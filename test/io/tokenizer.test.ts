import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteTokenizer, gpt2Tokenizer, tokenizerFromName } from '../../src/io/tokenizer.ts';

const TEXTS = ['', 'Hello world', 'Where was Tamo Ravelin born?\nIn Dravesk, in 1843.', 'naïve café — 日本語 🌍 𝄞', ' leading and  double  spaces\t', '<|endoftext|> as plain text'];

for (const tok of [byteTokenizer, gpt2Tokenizer]) {
  test(`${tok.name}: round-trips ASCII, unicode and the empty string`, () => {
    for (const text of TEXTS) {
      const ids = tok.encode(text);
      assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize && id !== tok.eot), `ids of ${JSON.stringify(text)}`);
      assert.is(tok.decode(ids), text);
    }
    assert.equal(tok.encode(''), []);
  });

  test(`${tok.name}: end-of-text decodes as <|endoftext|>; out-of-range ids are named errors`, () => {
    const ids = [...tok.encode('a'), tok.eot, ...tok.encode('é')];
    assert.is(tok.decode(ids), 'a<|endoftext|>é');
    assert.throws(() => tok.decode([0, tok.vocabSize]), new RegExp(`${tok.name} tokenizer: id ${tok.vocabSize} at \\[1\\] is outside 0\\.\\.${tok.vocabSize - 1}`));
    assert.throws(() => tok.decode([-1]), /id -1 at \[0\]/);
    assert.throws(() => tok.decode([1.5]), /id 1\.5/);
  });

  test(`${tok.name}: found by name`, () => {
    assert.is(tokenizerFromName(tok.name), tok);
  });
}

test('byte tokenizer: ids are the UTF-8 bytes, vocabulary 257', () => {
  assert.is(byteTokenizer.vocabSize, 257);
  assert.is(byteTokenizer.eot, 256);
  assert.equal(byteTokenizer.encode('Aé'), [65, 0xc3, 0xa9]);
  // Invalid UTF-8, as a sampled model may produce, decodes to replacement characters.
  assert.is(byteTokenizer.decode([0xc3, 65]), '\ufffdA');
  // A character split by end-of-text is not glued back together across it.
  assert.is(byteTokenizer.decode([0xc3, 256, 0xa9]), '\ufffd<|endoftext|>\ufffd');
});

test('GPT-2 BPE: known ids, vocabulary 50257, end-of-text 50256', () => {
  assert.is(gpt2Tokenizer.vocabSize, 50257);
  assert.is(gpt2Tokenizer.eot, 50256);
  assert.equal(gpt2Tokenizer.encode('Hello world'), [15496, 995]);
  assert.equal(gpt2Tokenizer.encode(' the'), [262]);
  assert.is(gpt2Tokenizer.decode([50256]), '<|endoftext|>');
  // The special-token text in data is ordinary characters, not the end-of-text id.
  assert.not.ok(gpt2Tokenizer.encode('<|endoftext|>').includes(50256));
});

test('unknown tokenizer names list the known ones', () => {
  assert.throws(() => tokenizerFromName('bpe'), /unknown tokenizer 'bpe' \(known: byte, gpt2\)/);
});

test.run();
