// Forgetting: how much an edit hurts the model on general text that is about no passage. Each line
// is scored as language-model loss (mean next-token NLL, the first token predicted after
// end-of-text, as documents start in pretraining); forgetting is the edited model's mean minus the
// base model's, over a fixed sample of lines.
import { readText } from '../io/files.ts';
import type { Tensor, Weight } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { logitRows, type LanguageModel, type ModelPass, type Prefix } from '../model/lm.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';
import { rowIndex, type RowIndex } from '../ops/rows.ts';
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

/** Mean next-token NLL of each line, in batches of `batch` lines (fewer where their logits would not fit one binding). */
export async function generalNll(model: LanguageModel, tok: Tokenizer, lines: readonly string[], overrides?: ReadonlyMap<string, Weight>, batch = 16): Promise<Float64Array> {
  const out = new Float64Array(lines.length);
  let k = 0;
  for (const chunk of encodeChunks(model, tok, lines, [...lines.keys()], batch)) {
    try {
      const nll = await chunkNll(model, chunk, overrides);
      out.set(nll, k);
      k += nll.length;
    } finally {
      releaseChunk(chunk);
    }
  }
  return out;
}

/** A batch of lines on the GPU, and its residual stream at the prefix points asked for so far. */
interface Chunk {
  tokens: Tensor<'u32'>;
  targets: Tensor<'u32'>;
  /** The positions with a target (not padding): the model's top runs at these alone. */
  rows: RowIndex;
  /** Predicted tokens per line. */
  lengths: number[];
  T: number;
  prefixes: Map<string, Prefix>;
}

/** `at[i]`: line i's number in the caller's list (for the error). */
function encodeChunk(model: LanguageModel, tok: Tokenizer, lines: readonly string[], at: readonly number[]): Chunk {
  const gpu = model.gpu;
  const nCtx = model.config.nCtx;
  const seqs = lines.map((l, i) => {
    const ids = [tok.eot, ...tok.encode(l)].slice(0, nCtx + 1);
    if (ids.length < 2) throw new RangeError(`general text line ${at[i]} is empty`);
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
  const rows = [...targets.keys()].filter((i) => targets[i] !== IGNORE_INDEX);
  return { tokens: gpu.tensor(tokens, [B, T]), targets: gpu.tensor(targets, [B, T]), rows: rowIndex(gpu, rows, B * T), lengths: seqs.map((s) => s.length - 1), T, prefixes: new Map() };
}

/** Lines in chunks of at most `batch`, halved until a chunk's logits (rows × V, f32) fit one storage binding. */
function encodeChunks(model: LanguageModel, tok: Tokenizer, lines: readonly string[], at: readonly number[], batch: number): Chunk[] {
  const out: Chunk[] = [];
  const add = (ls: readonly string[], ids: readonly number[]) => {
    const c = encodeChunk(model, tok, ls, ids);
    if (c.rows.idx.size <= logitRows(model) || ls.length === 1) return void out.push(c);
    releaseChunk(c);
    const h = ls.length >> 1;
    add(ls.slice(0, h), ids.slice(0, h));
    add(ls.slice(h), ids.slice(h));
  };
  for (let start = 0; start < lines.length; start += batch) add(lines.slice(start, start + batch), at.slice(start, start + batch));
  return out;
}

function releaseChunk(c: Chunk): void {
  for (const t of [c.tokens, c.targets, c.rows.idx, ...[...c.prefixes.values()].map((p) => p.x)]) t.release();
}

/**
 * A chunk's pass under `overrides` (stacked, with `variants` G: PassOptions.variants); with
 * `shared`, from the base's residual stream below the lowest override (kept in the chunk).
 */
function chunkPass(model: LanguageModel, c: Chunk, overrides?: ReadonlyMap<string, Weight>, shared = false, variants = 1): ModelPass {
  const at = shared && overrides ? model.prefixPoint(overrides.keys()) : null;
  const key = at && `${at.layer}:${at.mlp}`;
  if (at && !c.prefixes.has(key!)) c.prefixes.set(key!, model.prefix(c.tokens, at));
  return model.forward(c.tokens, c.targets, overrides, { rows: c.rows, variants, ...(key ? { prefix: c.prefixes.get(key)! } : {}) });
}

/** Per variant, each line's mean NLL from a chunk pass's losses: each line's positions in order, line after line, variant after variant. */
function lineNll(c: Chunk, losses: Float32Array, variants: number): Float64Array[] {
  let at = 0;
  return Array.from({ length: variants }, () => Float64Array.from(c.lengths, (n) => mean(losses.subarray(at, (at += n)))));
}

async function chunkNll(model: LanguageModel, c: Chunk, overrides?: ReadonlyMap<string, Weight>): Promise<Float64Array> {
  const pass = chunkPass(model, c, overrides);
  try {
    return lineNll(c, await model.gpu.read(pass.losses!), 1)[0]!;
  } finally {
    pass.release();
  }
}

/** An edit to measure: its overrides (none: the base), written when its passes are encoded if a function. */
export interface ForgettingJob {
  overrides?: ReadonlyMap<string, Weight> | (() => ReadonlyMap<string, Weight>);
  variants?: number;
}

/**
 * The base model's general-text loss, measured once, against which edits are compared. The lines
 * stay on the GPU, with their residual stream below the edited tensors (shared by every edit of
 * the same tensors): release() frees them.
 */
export class ForgettingProbe {
  readonly lines: readonly string[];
  readonly baseNll: number;
  readonly #model: LanguageModel;
  readonly #chunks: Chunk[];
  /** The lines by token count, longest first: chunks of similar lengths carry little padding. */
  readonly #order: number[];

  private constructor(model: LanguageModel, lines: readonly string[], chunks: Chunk[], order: number[], baseNll: number) {
    this.#model = model;
    this.lines = lines;
    this.#chunks = chunks;
    this.#order = order;
    this.baseNll = baseNll;
  }

  static async create(model: LanguageModel, tok: Tokenizer, lines: readonly string[], batch = 16): Promise<ForgettingProbe> {
    if (lines.length === 0) throw new RangeError('forgetting: no general-text lines to measure on');
    const length = lines.map((l) => tok.encode(l).length);
    const order = [...lines.keys()].sort((a, b) => length[b]! - length[a]! || a - b);
    const chunks = encodeChunks(model, tok, order.map((i) => lines[i]!), order, batch);
    const probe = new ForgettingProbe(model, lines, chunks, order, 0);
    const base = mean((await probe.#nll([{}]))[0]!);
    return new ForgettingProbe(model, lines, chunks, order, base);
  }

  /**
   * Per job and variant, each line's NLL in the given order. Every job's passes are encoded before
   * one readback; a job's overrides given as a function are written just before its passes
   * (scratch tensors the next job may rewrite: GPU order keeps each pass's).
   */
  async #nll(jobs: readonly ForgettingJob[]): Promise<Float64Array[]> {
    const passes: { c: Chunk; variants: number; pass: ModelPass }[] = [];
    try {
      for (const j of jobs) {
        const overrides = typeof j.overrides === 'function' ? j.overrides() : j.overrides;
        const variants = j.variants ?? 1;
        if (variants > this.maxVariants) throw new RangeError(`forgetting: ${variants} variants' logits do not fit one storage binding (at most ${this.maxVariants})`);
        for (const c of this.#chunks) passes.push({ c, variants, pass: chunkPass(this.#model, c, overrides, true, variants) });
      }
      const read = (await this.#model.gpu.readMany(passes.map((x) => x.pass.losses!))) as Float32Array[];
      const out: Float64Array[] = [];
      let i = 0;
      for (const j of jobs) {
        const job = Array.from({ length: j.variants ?? 1 }, () => new Float64Array(this.lines.length));
        let k = 0;
        for (const c of this.#chunks) {
          const { variants } = passes[i]!;
          lineNll(c, read[i++]!, variants).forEach((v, g) => v.forEach((x, l) => (job[g]![this.#order[k + l]!] = x)));
          k += c.lengths.length;
        }
        out.push(...job);
      }
      return out;
    } finally {
      for (const x of passes) x.pass.release();
    }
  }

  /** Mean general-text NLL under the edit minus the base's (0 without overrides: nothing changed). */
  async measure(overrides?: ReadonlyMap<string, Weight>): Promise<number> {
    if (!overrides || overrides.size === 0) return 0;
    return (await this.measureMany([{ overrides }]))[0]!;
  }

  /** The most variants one pass can measure: its logits must fit one storage binding. */
  get maxVariants(): number {
    return Math.max(1, Math.floor(logitRows(this.#model) / Math.max(...this.#chunks.map((c) => c.rows.idx.size))));
  }

  /** measure() for several edits, read back together; a job of `variants` G (stacked overrides, G ≤ maxVariants) gives G values. */
  async measureMany(jobs: readonly ForgettingJob[]): Promise<number[]> {
    return (await this.#nll(jobs)).map((nll) => mean(nll) - this.baseNll);
  }

  release(): void {
    for (const c of this.#chunks) releaseChunk(c);
  }
}
