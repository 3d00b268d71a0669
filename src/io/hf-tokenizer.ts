// A model's own tokenizer from its tokenizer.json (and tokenizer_config.json), through Hugging Face's
// Tokenizers.js (@huggingface/tokenizers): the same pipeline (normalizer, pre-tokenizer, BPE /
// Unigram / WordPiece model, decoder) as the Rust library, built from the local files only; nothing
// is fetched. Unlike the byte and GPT-2 tokenizers, special-token text in the input (e.g. "</s>")
// is matched as the special token, as transformers does.
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { exists, joinPath as join, readText } from './files.ts';
import { UserError } from '../util/errors.ts';
import type { Tokenizer } from './tokenizer.ts';

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | null> {
  if (!(await exists(path))) {
    if (!required) return null;
    throw new UserError(`${path}: no such file; a Hugging Face model folder has its tokenizer there (or pass a tokenizer by name)`);
  }
  const text = await readText(path);
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
}

/** The end-of-text token's text: tokenizer_config's eos_token (a string or {content}). */
function eosText(config: Record<string, unknown>): string | undefined {
  const eos = config.eos_token;
  if (typeof eos === 'string') return eos;
  if (eos && typeof eos === 'object' && typeof (eos as { content?: unknown }).content === 'string') return (eos as { content: string }).content;
  return undefined;
}

/** The tokenizer in a model folder: tokenizer.json, with tokenizer_config.json when present. */
export async function loadHfTokenizer(dir: string): Promise<Tokenizer> {
  const jsonPath = join(dir, 'tokenizer.json');
  const json = (await readJson(jsonPath, true))!;
  const config = (await readJson(join(dir, 'tokenizer_config.json'), false)) ?? {};
  return hfTokenizer(json, config, jsonPath);
}

/** A Tokenizer over tokenizer.json's object; `source` names it in errors. */
export function hfTokenizer(json: Record<string, unknown>, config: Record<string, unknown>, source: string): Tokenizer {
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizer(json, config);
  } catch (e) {
    throw new UserError(`${source}: not a tokenizer Tokenizers.js can build: ${(e as Error).message}`);
  }
  const ids = [...tok.get_vocab(true).values()];
  if (ids.length === 0) throw new UserError(`${source}: the tokenizer has an empty vocabulary`);
  const vocabSize = Math.max(...ids) + 1;
  const eosName = eosText(config) ?? ['<|endoftext|>', '</s>', '<|end_of_text|>'].find((t) => tok.token_to_id(t) !== undefined);
  const eot = eosName === undefined ? undefined : tok.token_to_id(eosName);
  if (eot === undefined) throw new UserError(`${source}: no end-of-text token (tokenizer_config.json's eos_token${eosName ? ` '${eosName}' is not in the vocabulary` : ' is not set'})`);
  return {
    name: `hf:${source}`,
    vocabSize,
    eot,
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode(ids) {
      for (const [i, id] of ids.entries()) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new RangeError(`${source} tokenizer: id ${id} at [${i}] is outside 0..${vocabSize - 1}`);
      }
      return ids.length === 0 ? '' : tok.decode([...ids], { skip_special_tokens: false });
    },
  };
}

/**
 * A byte-level BPE tokenizer.json of exactly `vocabSize` ids, for random checkpoints: id 0 is
 * <|endoftext|>, then the 256 bytes (GPT-2's byte-to-character map), then merges of lowercase letter
 * pairs (English's commonest first), then reserved tokens up to the size. Any text encodes (bytes at worst).
 */
export function byteLevelTokenizerJson(vocabSize: number): { json: Record<string, unknown>; config: Record<string, unknown> } {
  const EOT = '<|endoftext|>';
  if (!Number.isInteger(vocabSize) || vocabSize < 257) throw new UserError(`a byte-level tokenizer needs at least 257 ids, asked for ${vocabSize}`);
  const vocab: Record<string, number> = { [EOT]: 0 };
  byteChars().forEach((ch, b) => (vocab[ch] = 1 + b));
  const merges: string[] = [];
  // English's commonest letter pairs first, then the rest.
  const common = 'th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve co me de hi ri ro ic ne ea ra ce'.split(' ');
  const letters = [...'abcdefghijklmnopqrstuvwxyz'];
  let next = 257;
  for (const pair of new Set([...common, ...letters.flatMap((a) => letters.map((b) => a + b))])) {
    if (next >= vocabSize) break;
    merges.push(`${pair[0]} ${pair[1]}`);
    vocab[pair] = next++;
  }
  for (let i = 0; next < vocabSize; i++) vocab[`<|reserved_${i}|>`] = next++;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: EOT, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  return { json, config: { eos_token: EOT, bos_token: EOT, tokenizer_class: 'GPT2Tokenizer' } };
}

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++));
}
