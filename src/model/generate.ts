// Text generation with a KV cache. A prefill runs the prompts (right-padded into one batch) through
// the model once and keeps every layer's k and v; each step then runs one token per sequence
// (matmuls with M = batch rows), appends its k and v, attends over the cache, and reads back only
// the last-position logits (B×V) that sampling needs. Sequences keep their own positions, so
// prompts of different lengths share a batch. Sampling (greedy, temperature, top-k, top-p) runs
// on the host in f64. With `cache: false` each step reruns GPT2.model.forward over the whole sequence:
// the reference the cached path is tested against, and the benchmark's baseline.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor, Weight } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { attentionForward } from '../ops/attention.ts';
import { decodeAttention, embedStep, gatherRows, kvFill } from '../ops/decode.ts';
import { embeddingForward, uploadTokens } from '../ops/embedding.ts';
import { layernormForward } from '../ops/layernorm.ts';
import { lmHead } from '../ops/lmhead.ts';
import { matmul } from '../ops/matmul.ts';
import { Rng } from '../util/random.ts';
import type { GPT2 } from './gpt2.ts';
import { weightsOf, type Decoder, type LanguageModel } from './lm.ts';

export const DEFAULT_MAX_NEW = 32;

export interface SamplingOptions {
  /** Softmax temperature; 0 (the default) is greedy. */
  temperature?: number;
  /** Sample only among the k most likely tokens. */
  topK?: number;
  /** Sample only among the fewest most likely tokens whose probabilities sum to at least p. */
  topP?: number;
  /** Sequence b draws from Rng(seed + b): a batch samples exactly as its prompts would one by one. */
  seed?: number;
}

export interface TokenGenerateOptions extends SamplingOptions {
  /** New tokens per sequence at most (default 32); prompt + maxNew must fit the context. */
  maxNew?: number;
  /** Edited copies of some weights, as a model's forward takes; the model's own stay untouched. */
  overrides?: ReadonlyMap<string, Weight>;
  /** false: no KV cache, a full forward per step (slow; for tests and benchmarks). */
  cache?: boolean;
  /** A token that ends its sequence (not included in the output). */
  eot?: number;
  /** Asked after each new token of sequence b; true ends the sequence. */
  stop?: (generated: readonly number[], b: number) => boolean;
}

export type Finish = 'length' | 'eot' | 'stop';

export interface TokenGeneration {
  tokens: number[];
  finish: Finish;
}

/** Generates a continuation of each prompt (token ids), batched. */
export async function generateTokens(model: LanguageModel, prompts: readonly (readonly number[])[], opts: TokenGenerateOptions = {}): Promise<TokenGeneration[]> {
  const { nCtx, vocabSize: V } = model.config;
  const maxNew = opts.maxNew ?? DEFAULT_MAX_NEW;
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new RangeError(`generate: maxNew must be a positive integer, got ${maxNew}`);
  checkSampling(opts);
  prompts.forEach((p, b) => {
    if (p.length === 0) throw new RangeError(`generate: prompt ${b} is empty (start it with the end-of-text token)`);
    if (p.length + maxNew > nCtx) {
      throw new RangeError(
        `generate: prompt ${b} has ${p.length} tokens; with maxNew = ${maxNew} that is ${p.length + maxNew} positions, over the model's context of ${nCtx} (shorten the prompt or lower maxNew)`,
      );
    }
  });
  if (prompts.length === 0) return [];
  const B = prompts.length;
  const decoder: Decoder = opts.cache === false ? new FullForward(model, prompts, opts.overrides) : model.decoder(prompts, maxNew, opts.overrides);
  const rngs = prompts.map((_, b) => new Rng((opts.seed ?? 0) + b));
  const out: TokenGeneration[] = prompts.map(() => ({ tokens: [], finish: 'length' }));
  const active = prompts.map(() => true);
  try {
    let logits = await decoder.prefill();
    for (;;) {
      const next = new Uint32Array(B);
      for (let b = 0; b < B; b++) {
        if (!active[b]) continue;
        const g = out[b]!;
        const id = sampleToken(logits.subarray(b * V, (b + 1) * V), opts, rngs[b]!);
        if (id === opts.eot) {
          g.finish = 'eot';
          active[b] = false;
          continue;
        }
        g.tokens.push(id);
        next[b] = id;
        if (opts.stop?.(g.tokens, b)) {
          g.finish = 'stop';
          active[b] = false;
        } else if (g.tokens.length === maxNew) active[b] = false;
      }
      if (!active.includes(true)) return out;
      logits = await decoder.step(next, active);
    }
  } finally {
    decoder.release();
  }
}

export interface GenerateOptions extends Omit<TokenGenerateOptions, 'stop' | 'eot'> {
  /** Strings that end a sequence; its text is cut before the first one. */
  stop?: readonly string[];
  /** A prompt too long for maxNew more tokens keeps its end instead of failing. */
  truncate?: boolean;
}

export interface Generation extends TokenGeneration {
  text: string;
}

/**
 * Generates a continuation of each prompt (text), batched. Sequences end at the tokenizer's
 * end-of-text, at a stop string or after maxNew tokens. An empty prompt starts from end-of-text.
 */
export async function generate(model: LanguageModel, tok: Tokenizer, prompts: readonly string[], opts: GenerateOptions = {}): Promise<Generation[]> {
  const keep = Math.max(1, model.config.nCtx - (opts.maxNew ?? DEFAULT_MAX_NEW));
  const ids = prompts.map((p) => {
    const t = p === '' ? [tok.eot] : tok.encode(p);
    return opts.truncate ? t.slice(-keep) : t;
  });
  const stops = opts.stop ?? [];
  const cut = (text: string) => Math.min(text.length, ...stops.map((s) => text.indexOf(s)).filter((i) => i >= 0));
  const gens = await generateTokens(model, ids, {
    ...opts,
    eot: tok.eot,
    stop: stops.length > 0 ? (g) => stops.some((s) => tok.decode(g).includes(s)) : undefined,
  });
  return gens.map((g) => {
    const text = tok.decode(g.tokens);
    return { ...g, text: text.slice(0, cut(text)) };
  });
}

// ---- sampling -----------------------------------------------------------------------------------

function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!Number.isFinite(t) || t < 0) throw new RangeError(`generate: temperature must be ≥ 0, got ${o.temperature}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 1)) throw new RangeError(`generate: topK must be a positive integer, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new RangeError(`generate: topP must be in (0, 1], got ${o.topP}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new RangeError(`generate: seed must be an integer, got ${o.seed}`);
}

/** One token from a row of logits: argmax at temperature 0 (lowest id on ties), else a draw. */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  let best = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (!Number.isFinite(v)) throw new RangeError(`generate: logit ${i} is ${v}; the model's output is not finite`);
    if (v > logits[best]!) best = i;
  }
  const temperature = opts.temperature ?? 0;
  if (temperature === 0 || opts.topK === 1) return best;
  let ids = [...logits.keys()];
  if (opts.topK !== undefined || opts.topP !== undefined) {
    ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
    if (opts.topK !== undefined) ids = ids.slice(0, opts.topK);
  }
  const max = logits[best]!;
  let weights = ids.map((i) => Math.exp((logits[i]! - max) / temperature));
  if (opts.topP !== undefined) {
    const need = opts.topP * sum(weights);
    let acc = 0;
    let n = 0;
    while (n < weights.length && acc < need) acc += weights[n++]!;
    ids = ids.slice(0, n);
    weights = weights.slice(0, n);
  }
  let u = rng.next() * sum(weights);
  for (let k = 0; k < ids.length; k++) {
    u -= weights[k]!;
    if (u < 0) return ids[k]!;
  }
  return ids[ids.length - 1]!;
}

const sum = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0);

// ---- decoders -----------------------------------------------------------------------------------

type Weights = (name: string) => Weight;
/** A vector weight (LayerNorm gain, bias): always f32 (the ops check). */
const vec = (w: Weights, name: string) => w(name) as F32;

/** Sequences right-padded into one (B,T) batch, with the row of each one's last token. */
export function padded(gpu: Gpu, seqs: readonly (readonly number[])[], V: number) {
  const T = Math.max(...seqs.map((s) => s.length));
  const ids = new Uint32Array(seqs.length * T);
  seqs.forEach((s, b) => ids.set(s, b * T));
  const tokens = uploadTokens(gpu, ids, [seqs.length, T], V);
  const last = gpu.tensor(Uint32Array.from(seqs, (s, b) => b * T + s.length - 1));
  return { T, tokens, last };
}

/** Reads a (B,V) logits tensor, releasing it and whatever else the step made. */
export async function readAndRelease(gpu: Gpu, logits: F32, ...temps: Tensor[]): Promise<Float32Array> {
  try {
    return await gpu.read(logits);
  } finally {
    for (const t of [logits, ...temps]) t.release();
  }
}

/**
 * One transformer block on rows x (N,C), updated in place (the residual stream). `attend` maps the
 * block's qkv (N,3C) to the attention output (N rows of C, any shape); its result is released here.
 */
function block(gpu: Gpu, w: Weights, l: number, x: F32, attend: (qkv: F32) => F32): void {
  const p = (s: string) => w(`h.${l}.${s}`);
  const pv = (s: string) => vec(w, `h.${l}.${s}`);
  const ln1 = layernormForward(gpu, x, pv('ln_1.weight'), pv('ln_1.bias'));
  const qkv = matmul(gpu, ln1.out, p('attn.c_attn.weight'), { bias: pv('attn.c_attn.bias') });
  const att = attend(qkv);
  matmul(gpu, att.reshape(x.shape), p('attn.c_proj.weight'), { bias: pv('attn.c_proj.bias'), accumulate: true, out: x });
  const ln2 = layernormForward(gpu, x, pv('ln_2.weight'), pv('ln_2.bias'));
  const act = matmul(gpu, ln2.out, p('mlp.c_fc.weight'), { bias: pv('mlp.c_fc.bias'), gelu: true });
  matmul(gpu, act, p('mlp.c_proj.weight'), { bias: pv('mlp.c_proj.bias'), accumulate: true, out: x });
  for (const t of [ln1.out, ln1.mean, ln1.rstd, qkv, att, ln2.out, ln2.mean, ln2.rstd, act]) t.release();
}

/** Logits (B,V) of rows x (B,C): final LayerNorm, then the tied output embedding. */
function head(gpu: Gpu, w: Weights, x: F32): F32 {
  const lnf = layernormForward(gpu, x, vec(w, 'ln_f.weight'), vec(w, 'ln_f.bias'));
  const logits = lmHead(gpu, lnf.out, w('wte.weight'));
  for (const t of [lnf.out, lnf.mean, lnf.rstd]) t.release();
  return logits;
}

/** GPT-2's decoder (GPT2.decoder). */
export class KvCache implements Decoder {
  readonly #model: GPT2;
  readonly #w: Weights;
  readonly #prompts: readonly (readonly number[])[];
  /** Per layer (B, Tcap, 2C): k and v of every position so far. */
  readonly #kv: F32[];
  /** Position of each sequence's next token. */
  readonly #next: number[];
  readonly #tokens: Tensor<'u32'>;
  readonly #pos: Tensor<'u32'>;

  constructor(model: GPT2, prompts: readonly (readonly number[])[], maxNew: number, overrides?: ReadonlyMap<string, Weight>) {
    const { nLayer, nEmbd: C } = model.config;
    const gpu = model.gpu;
    const B = prompts.length;
    // A finished sequence keeps writing at its next position, so the cache holds every prompt + maxNew.
    const Tcap = Math.max(...prompts.map((p) => p.length)) + maxNew;
    this.#model = model;
    this.#w = weightsOf(model, overrides);
    this.#prompts = prompts;
    this.#next = prompts.map((p) => p.length);
    this.#kv = [];
    try {
      for (let l = 0; l < nLayer; l++) this.#kv.push(gpu.zeros([B, Tcap, 2 * C], 'f32', `kv cache h.${l}`));
      this.#tokens = gpu.zeros([B], 'u32', 'decode.tokens');
      this.#pos = gpu.zeros([B], 'u32', 'decode.pos');
    } catch (e) {
      for (const t of this.#kv) t.release();
      throw e;
    }
  }

  async prefill(): Promise<Float32Array> {
    const { gpu } = this.#model;
    const { nLayer, nHead, nEmbd: C, vocabSize: V } = this.#model.config;
    const w = this.#w;
    const B = this.#prompts.length;
    const { T, tokens, last } = padded(gpu, this.#prompts, V);
    const emb = embeddingForward(gpu, tokens, w('wte.weight'), w('wpe.weight'));
    const x = emb.reshape([B * T, C]);
    for (let l = 0; l < nLayer; l++) {
      block(gpu, w, l, x, (qkv) => {
        const q3 = qkv.reshape([B, T, 3 * C]);
        kvFill(gpu, q3, this.#kv[l]!);
        const att = attentionForward(gpu, q3, nHead);
        att.att.release();
        return att.out;
      });
    }
    const rows = gatherRows(gpu, x, last);
    return readAndRelease(gpu, head(gpu, w, rows), rows, emb, tokens, last);
  }

  async step(tokens: Uint32Array, active: readonly boolean[]): Promise<Float32Array> {
    const { gpu } = this.#model;
    const { nLayer, nHead, vocabSize: V } = this.#model.config;
    const w = this.#w;
    const bad = tokens.findIndex((id) => id >= V);
    if (bad >= 0) throw new RangeError(`generate: token id ${tokens[bad]} of sequence ${bad} is out of range for a vocabulary of ${V}`);
    const pos = Uint32Array.from(this.#next);
    active.forEach((a, b) => a && this.#next[b]!++);
    gpu.write(this.#tokens, tokens);
    gpu.write(this.#pos, pos);
    const T = Math.max(...pos) + 1;
    const x = embedStep(gpu, this.#tokens, this.#pos, w('wte.weight'), w('wpe.weight'));
    for (let l = 0; l < nLayer; l++) block(gpu, w, l, x, (qkv) => decodeAttention(gpu, qkv, this.#kv[l]!, this.#pos, T, nHead));
    return readAndRelease(gpu, head(gpu, w, x), x);
  }

  release(): void {
    for (const t of [...this.#kv, this.#tokens, this.#pos]) t.release();
  }
}

class FullForward implements Decoder {
  readonly #model: LanguageModel;
  readonly #overrides: ReadonlyMap<string, Weight> | undefined;
  readonly #seqs: number[][];

  constructor(model: LanguageModel, prompts: readonly (readonly number[])[], overrides?: ReadonlyMap<string, Weight>) {
    this.#model = model;
    this.#overrides = overrides;
    this.#seqs = prompts.map((p) => [...p]);
  }

  prefill(): Promise<Float32Array> {
    return this.#lastLogits();
  }

  step(tokens: Uint32Array, active: readonly boolean[]): Promise<Float32Array> {
    active.forEach((a, b) => a && this.#seqs[b]!.push(tokens[b]!));
    return this.#lastLogits();
  }

  async #lastLogits(): Promise<Float32Array> {
    const { gpu } = this.#model;
    const V = this.#model.config.vocabSize;
    const { T, tokens, last } = padded(gpu, this.#seqs, V);
    const pass = this.#model.forward(tokens, undefined, this.#overrides);
    const logits = gatherRows(gpu, pass.logits.reshape([this.#seqs.length * T, V]), last);
    try {
      return await readAndRelease(gpu, logits, tokens, last);
    } finally {
      pass.release();
    }
  }

  release(): void {}
}
