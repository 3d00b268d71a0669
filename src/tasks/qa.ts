// Scoring a model on question/answer items without the passage in context: the mean cross-entropy
// of the answer tokens given the question prompt. Rewards (SEAL) and evaluation both use this.
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { logitRows, type LanguageModel } from '../model/lm.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';
import { rowIndex } from '../ops/rows.ts';
import { generate } from '../model/generate.ts';
import { answerText, questionPrompt } from './corpus.ts';

export interface QAItem {
  question: string;
  answer: string;
}

export interface EncodedQA {
  tokens: Uint32Array;
  targets: Uint32Array;
  B: number;
  T: number;
  /** Answer tokens per item (the positions that carry a loss). */
  answerTokens: number[];
}

/**
 * Items as one right-padded batch: prompt then answer, with a loss only on answer tokens. A prompt
 * too long for the context loses its start; padding sits after each item, which causal attention
 * never lets earlier positions see.
 */
export function encodeQA(tok: Tokenizer, items: readonly QAItem[], nCtx: number, context = ''): EncodedQA {
  const seqs = items.map((it) => {
    const prompt = tok.encode(context + questionPrompt(it.question));
    const answer = tok.encode(answerText(it.answer));
    if (answer.length + 1 > nCtx) throw new RangeError(`answer '${it.answer}' is ${answer.length} tokens, too long for a context of ${nCtx}`);
    const all = [...prompt, ...answer].slice(-(nCtx + 1));
    return { all, answerStart: all.length - answer.length };
  });
  const T = Math.max(1, ...seqs.map((s) => s.all.length - 1));
  const B = items.length;
  const tokens = new Uint32Array(B * T);
  const targets = new Uint32Array(B * T).fill(IGNORE_INDEX);
  seqs.forEach(({ all, answerStart }, b) => {
    for (let t = 0; t < all.length - 1; t++) {
      tokens[b * T + t] = all[t]!;
      if (t + 1 >= answerStart) targets[b * T + t] = all[t + 1]!;
    }
  });
  return { tokens, targets, B, T, answerTokens: seqs.map((s) => s.all.length - s.answerStart) };
}

/**
 * Mean answer-token negative log-likelihood per item, optionally under edited weights (overrides)
 * or with text (e.g. the passage) placed before each question.
 */
export async function answerNll(
  model: LanguageModel,
  tok: Tokenizer,
  items: readonly QAItem[],
  opts: { overrides?: ReadonlyMap<string, F32>; context?: string } = {},
): Promise<Float64Array> {
  if (items.length === 0) return new Float64Array(0);
  const gpu = model.gpu;
  const e = encodeQA(tok, items, model.config.nCtx, opts.context);
  if (e.B * e.T > logitRows(model)) return inHalves(items, (part) => answerNll(model, tok, part, opts));
  const tokens = gpu.tensor(e.tokens, [e.B, e.T]);
  const targets = gpu.tensor(e.targets, [e.B, e.T]);
  // The model's top runs only at the answer positions (the ones with a loss), in order.
  const rows = [...e.targets.keys()].filter((i) => e.targets[i] !== IGNORE_INDEX);
  const index = rowIndex(gpu, rows, e.B * e.T);
  const pass = model.forward(tokens, targets, opts.overrides, { rows: index });
  try {
    const losses = await gpu.read(pass.losses!);
    const out = new Float64Array(e.B);
    rows.forEach((i, k) => (out[Math.floor(i / e.T)]! += losses[k]!));
    for (let b = 0; b < e.B; b++) out[b]! /= e.answerTokens[b]!;
    return out;
  } finally {
    pass.release();
    for (const t of [tokens, targets, index.idx]) t.release();
  }
}

/**
 * f over the two halves of items, joined: for a batch whose logits would not fit one storage
 * binding (a large vocabulary). One item that does not fit is an error.
 */
export async function inHalves<T>(items: readonly T[], f: (part: readonly T[]) => Promise<Float64Array>): Promise<Float64Array> {
  if (items.length < 2) throw new RangeError("one sequence's logits do not fit one storage binding of this adapter: shorten it");
  const h = Math.ceil(items.length / 2);
  const [a, b] = [await f(items.slice(0, h)), await f(items.slice(h))];
  const out = new Float64Array(items.length);
  out.set(a);
  out.set(b, h);
  return out;
}

/** SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces. */
export function normalizeAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]/gu, ' ')
    .replace(/\b(a|an|the)\b/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

export const exactMatch = (prediction: string, answers: readonly string[]) =>
  answers.some((a) => normalizeAnswer(a) === normalizeAnswer(prediction));

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length ? s / xs.length : NaN;
}

/**
 * Greedy answers to questions asked as questionPrompt(question) (after `context`, if given):
 * generation stops at a newline or after maxNew tokens (default 16), batched over the questions.
 * A prompt too long for the context loses its start, as in encodeQA.
 */
export async function greedyAnswers(
  model: LanguageModel,
  tok: Tokenizer,
  questions: readonly string[],
  opts: { overrides?: ReadonlyMap<string, F32>; context?: string; maxNew?: number } = {},
): Promise<string[]> {
  const prompts = questions.map((q) => (opts.context ?? '') + questionPrompt(q));
  const gens = await generate(model, tok, prompts, { maxNew: opts.maxNew ?? 16, overrides: opts.overrides, stop: ['\n'], truncate: true });
  return gens.map((g) => g.text.trim());
}
