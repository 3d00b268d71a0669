// Forgetting: how much an edit hurts the model on general text that is about no passage. Each line
// is scored as language-model loss (mean next-token NLL, the first token predicted after
// end-of-text, as documents start in pretraining); forgetting is the edited model's mean minus the
// base model's, over a fixed sample of lines.
import { readText } from '../io/files.ts';
import type { Weight } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { GPT2 } from '../model/gpt2.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import { mean } from './qa.ts';

/** `n` lines drawn without replacement by `seed`, in file order: the same sample on every run. */
export function sampleLines(lines: readonly string[], n: number, seed: number): string[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`general-text sample size must be a positive integer, got ${n}`);
  const picked = new Rng(seed).shuffle([...lines.keys()]).slice(0, n);
  return picked.sort((a, b) => a - b).map((i) => lines[i]!);
}

/** Non-empty lines of a text file (data/knowledge/general.txt), sampled as above. */
export async function loadGeneralText(path: string, n: number, seed = 1): Promise<string[]> {
  const lines = (await readText(path)).split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new UserError(`${path}: no lines of general text`);
  return sampleLines(lines, Math.min(n, lines.length), seed);
}

/** Mean next-token NLL of each line, in batches of `batch` lines (the logits are batch×T×V). */
export async function generalNll(model: GPT2, tok: Tokenizer, lines: readonly string[], overrides?: ReadonlyMap<string, Weight>, batch = 16): Promise<Float64Array> {
  const out = new Float64Array(lines.length);
  for (let start = 0; start < lines.length; start += batch) {
    const chunk = lines.slice(start, start + batch);
    const nll = await chunkNll(model, tok, chunk, overrides);
    out.set(nll, start);
  }
  return out;
}

async function chunkNll(model: GPT2, tok: Tokenizer, lines: readonly string[], overrides?: ReadonlyMap<string, Weight>): Promise<Float64Array> {
  const gpu = model.gpu;
  const nCtx = model.config.nCtx;
  const seqs = lines.map((l, i) => {
    const ids = [tok.eot, ...tok.encode(l)].slice(0, nCtx + 1);
    if (ids.length < 2) throw new RangeError(`general text line ${i} is empty`);
    return ids;
  });
  const B = seqs.length;
  const T = Math.max(...seqs.map((s) => s.length - 1));
  const tokens = new Uint32Array(B * T);
  const targets = new Uint32Array(B * T).fill(IGNORE_INDEX);
  seqs.forEach((s, b) => {
    tokens.set(s.slice(0, -1), b * T);
    targets.set(s.slice(1), b * T);
  });
  const tt = gpu.tensor(tokens, [B, T]);
  const tg = gpu.tensor(targets, [B, T]);
  const pass = model.forward(tt, tg, overrides);
  try {
    const losses = await gpu.read(pass.losses!);
    return Float64Array.from(seqs, (s, b) => mean(losses.subarray(b * T, b * T + s.length - 1)));
  } finally {
    pass.release();
    tt.release();
    tg.release();
  }
}

/** The base model's general-text loss, measured once, against which edits are compared. */
export class ForgettingProbe {
  readonly lines: readonly string[];
  readonly baseNll: number;
  readonly #model: GPT2;
  readonly #tok: Tokenizer;

  private constructor(model: GPT2, tok: Tokenizer, lines: readonly string[], baseNll: number) {
    this.#model = model;
    this.#tok = tok;
    this.lines = lines;
    this.baseNll = baseNll;
  }

  static async create(model: GPT2, tok: Tokenizer, lines: readonly string[]): Promise<ForgettingProbe> {
    if (lines.length === 0) throw new RangeError('forgetting: no general-text lines to measure on');
    return new ForgettingProbe(model, tok, lines, mean(await generalNll(model, tok, lines)));
  }

  /** Mean general-text NLL under the edit minus the base's (0 without overrides: nothing changed). */
  async measure(overrides?: ReadonlyMap<string, Weight>): Promise<number> {
    if (!overrides || overrides.size === 0) return 0;
    return mean(await generalNll(this.#model, this.#tok, this.lines, overrides)) - this.baseNll;
  }
}
