// Text formats the models see, the pretraining token stream, and a passage as one batch of LM
// windows (finetuning on it, SEAL's features of it). One place defines how a question and its
// answer are written, so pretraining, rewards and evaluation agree.
import type { Tokenizer } from '../io/tokenizer.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';
import { Rng } from '../util/random.ts';
import type { Passage } from './squad.ts';
import { templateSelfEdit } from './synthetic.ts';

/** The prompt for a question asked without the passage in context. */
export const questionPrompt = (question: string) => `Q: ${question}\nA:`;
/** The answer continuation scored after the prompt. */
export const answerText = (answer: string) => ` ${answer}\n`;

/**
 * Variant B's self-edit prompt: the passage, then a header the model continues with "implications"
 * of it, one statement per line, ending with end-of-text (or SELF_EDIT_STOP). The same text in
 * pretraining (template self-edits) and in generation, so the format is one definition.
 */
export const selfEditPrompt = (context: string) => `${context}\nImplications:\n`;
/** A blank line also ends a self-edit. */
export const SELF_EDIT_STOP = '\n\n';

/**
 * Pretraining documents: each passage followed by its questions and answers (the model learns the
 * facts and the QA format), and each QA pair again on its own (so answers come from memory, not
 * only from a passage just read).
 */
export function pretrainDocuments(passages: readonly Passage[], selfEdits?: { perPassage: number; seed: number }): string[] {
  const docs: string[] = [];
  const rng = new Rng(selfEdits?.seed ?? 0);
  for (const p of passages) {
    // With selfEdits: also the passage followed by template self-edits (variant B's base).
    for (let i = 0; i < (selfEdits?.perPassage ?? 0); i++) {
      const edit = templateSelfEdit(p, rng);
      if (edit) docs.push(selfEditPrompt(p.context) + edit);
    }
    const qa = p.questions.map((q) => questionPrompt(q.question) + answerText(q.answers[0]!));
    docs.push(`${p.context}\n${qa.join('')}`);
    for (const line of qa) docs.push(line);
  }
  return docs;
}

/** Documents shuffled with a seed and joined by end-of-text into one token stream. */
export function tokenStream(docs: readonly string[], tok: Tokenizer, seed: number): Uint32Array {
  const order = new Rng(seed).shuffle([...docs.keys()]);
  const ids: number[] = [];
  for (const i of order) ids.push(...tok.encode(docs[i]!), tok.eot);
  return Uint32Array.from(ids);
}

/**
 * Batch number `step` of B windows of T+1 tokens at offsets drawn from (seed, step) alone, so a
 * resumed run sees exactly the batches an uninterrupted one would.
 */
export function batchAt(stream: Uint32Array, B: number, T: number, seed: number, step: number): { tokens: Uint32Array; targets: Uint32Array } {
  if (stream.length < T + 1) throw new RangeError(`token stream of ${stream.length} is shorter than one window (${T + 1})`);
  const rng = new Rng((seed * 0x9e3779b1 + step) >>> 0);
  const tokens = new Uint32Array(B * T);
  const targets = new Uint32Array(B * T);
  for (let b = 0; b < B; b++) {
    const o = rng.int(stream.length - T);
    tokens.set(stream.subarray(o, o + T), b * T);
    targets.set(stream.subarray(o + 1, o + T + 1), b * T);
  }
  return { tokens, targets };
}

/**
 * The passage as one batch of windows: end-of-text then the text (documents start so in
 * pretraining), cut into rows of nCtx inputs whose targets are the next tokens; the last row is
 * padded with IGNORE_INDEX. Every token after the first is predicted exactly once.
 */
export function passageBatch(tok: Tokenizer, text: string, nCtx: number): { tokens: Uint32Array; targets: Uint32Array; B: number; T: number } {
  const ids = [tok.eot, ...tok.encode(text)];
  const predicted = ids.length - 1;
  if (predicted < 1) throw new RangeError('passageBatch: the passage text is empty');
  const B = Math.ceil(predicted / nCtx);
  const T = Math.min(nCtx, predicted);
  const tokens = new Uint32Array(B * T);
  const targets = new Uint32Array(B * T).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) {
    const from = b * T;
    const n = Math.min(T, predicted - from);
    tokens.set(ids.slice(from, from + n), b * T);
    targets.set(ids.slice(from + 1, from + n + 1), b * T);
  }
  return { tokens, targets, B, T };
}
