// Tokenizers behind one interface, looked up by name so a checkpoint can record which one it used.
// Both treat the text "<|endoftext|>" as ordinary characters when encoding: the end-of-text token
// is only ever inserted by code (as `eot`), never smuggled in by data.
import * as gpt2 from 'gpt-tokenizer/encoding/r50k_base';
import { UserError } from '../util/errors.ts';

export interface Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  /** End-of-text id: separates documents; decodes as "<|endoftext|>". */
  readonly eot: number;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

const EOT_TEXT = '<|endoftext|>';

function checkIds(tok: Tokenizer, ids: readonly number[]): void {
  for (const [i, id] of ids.entries()) {
    if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) {
      throw new RangeError(`${tok.name} tokenizer: id ${id} at [${i}] is outside 0..${tok.vocabSize - 1}`);
    }
  }
}

/** UTF-8 bytes as ids 0..255, plus end-of-text 256: a 257-token vocabulary for tiny models. */
export const byteTokenizer: Tokenizer = {
  name: 'byte',
  vocabSize: 257,
  eot: 256,
  encode: (text) => Array.from(new TextEncoder().encode(text)),
  decode(ids) {
    checkIds(this, ids);
    // Bytes between end-of-text ids decode as one run, so multi-byte characters stay whole;
    // invalid UTF-8 (a model's output may be any bytes) becomes U+FFFD.
    const decoder = new TextDecoder();
    const parts: string[] = [];
    let run: number[] = [];
    for (const id of [...ids, this.eot]) {
      if (id !== this.eot) {
        run.push(id);
        continue;
      }
      parts.push(decoder.decode(new Uint8Array(run)));
      run = [];
    }
    return parts.join(EOT_TEXT);
  },
};

/** GPT-2's byte-level BPE (r50k_base): 50257 tokens, end-of-text 50256. */
export const gpt2Tokenizer: Tokenizer = {
  name: 'gpt2',
  vocabSize: 50257,
  eot: 50256,
  encode: (text) => gpt2.encode(text, { disallowedSpecial: new Set() }),
  decode(ids) {
    checkIds(this, ids);
    return gpt2.decode(ids);
  },
};

const TOKENIZERS: readonly Tokenizer[] = [byteTokenizer, gpt2Tokenizer];

export function tokenizerFromName(name: string): Tokenizer {
  const tok = TOKENIZERS.find((t) => t.name === name);
  if (!tok) throw new UserError(`unknown tokenizer '${name}' (known: ${TOKENIZERS.map((t) => t.name).join(', ')})`);
  return tok;
}
