// Evaluation of SEAL variant B like the paper's knowledge-incorporation table: per held-out passage,
// the update each method makes, then the passage's questions answered with no passage in context
// (answer NLL over all questions, exact match of greedy answers). Methods: no update; the passage in
// context (a reference, no update); a LoRA finetune on the passage alone; on a self-edit sampled from
// a generator (the base model itself, or a SEAL-trained generator adapter). Over seeds: the
// adapter's init and the self-edit's sampling. Time per passage: the update (sampling + finetune).
// The continual experiment applies passage 1..n's updates in sequence, each on top of the last, and
// scores every earlier passage after each.
import type { F32 } from '../../gpu/tensor.ts';
import type { Tokenizer } from '../../io/tokenizer.ts';
import { GPT2 } from '../../model/gpt2.ts';
import type { Lora } from '../../model/lora.ts';
import { answerNll, exactMatch, greedyAnswers, mean } from '../../tasks/qa.ts';
import type { Passage } from '../../tasks/squad.ts';
import { loraUpdate, updateText, type InnerOptions } from './inner.ts';
import { sampleSelfEdits, type SampleOptions } from './selfedit.ts';

export type TextMethod =
  | { name: string; kind: 'none' | 'in-context' | 'passage' }
  /** generator null: the base model's own self-edits. */
  | { name: string; kind: 'self-edit'; generator: Lora | null };

export interface TextEvalOptions {
  seeds: number[];
  inner: InnerOptions;
  /** How self-edits are sampled (one per passage and seed). */
  sampling: SampleOptions;
}

export interface PassageOutcome {
  nll: number;
  em: number;
}

export interface MethodResult {
  name: string;
  /** [seed][passage] */
  outcomes: PassageOutcome[][];
  /** Mean over passages, per seed. */
  nll: number[];
  em: number[];
  msPerPassage: number;
  /** The self-edits of the first seed, per passage, to show what the generator writes. */
  examples: string[];
}

/** Answer NLL and EM of a passage's questions under `overrides` (or with `context` before them). */
export async function scorePassage(model: GPT2, tok: Tokenizer, p: Passage, opts: { overrides?: ReadonlyMap<string, F32>; context?: string }): Promise<PassageOutcome> {
  const items = p.questions.map((q) => ({ question: q.question, answer: q.answers[0]! }));
  const nll = mean(await answerNll(model, tok, items, opts));
  const answers = await greedyAnswers(model, tok, p.questions.map((q) => q.question), opts);
  return { nll, em: mean(answers.map((a, i) => (exactMatch(a, p.questions[i]!.answers) ? 1 : 0))) };
}

/** The text an update method trains on, per passage (null: the method makes no update); self-edits are sampled for all passages in one batch. */
async function updateSources(model: GPT2, tok: Tokenizer, m: TextMethod, passages: readonly Passage[], sampling: SampleOptions, inner: InnerOptions): Promise<(string | null)[]> {
  if (m.kind !== 'self-edit') return passages.map((p) => (m.kind === 'passage' ? p.context : null));
  const merged = m.generator?.merged(model);
  try {
    const edits = await sampleSelfEdits(model, tok, passages, { ...sampling, samples: 1 }, merged);
    return edits.map((e, i) => updateText(passages[i]!, e.text, inner.withPassage));
  } finally {
    merged?.forEach((t) => t.release());
  }
}

export async function evaluateText(model: GPT2, tok: Tokenizer, passages: readonly Passage[], methods: readonly TextMethod[], o: TextEvalOptions): Promise<MethodResult[]> {
  const results: MethodResult[] = [];
  for (const m of methods) {
    const outcomes: PassageOutcome[][] = [];
    const examples: string[] = [];
    let ms = 0;
    let updates = 0;
    // No update and in-context have no randomness: one pass serves every seed.
    const seeds = m.kind === 'none' || m.kind === 'in-context' ? o.seeds.slice(0, 1) : o.seeds;
    for (const seed of seeds) {
      const row: PassageOutcome[] = [];
      const ts = performance.now();
      const texts = await updateSources(model, tok, m, passages, { ...o.sampling, seed: seed * 1000 }, o.inner);
      ms += performance.now() - ts;
      if (seed === o.seeds[0] && m.kind === 'self-edit') examples.push(...(texts as string[]));
      for (const [i, p] of passages.entries()) {
        const t0 = performance.now();
        const text = texts[i]!;
        const overrides = text === null ? undefined : await loraUpdate(model, tok, text, { ...o.inner, seed });
        if (text !== null) (ms += performance.now() - t0), updates++;
        try {
          row.push(await scorePassage(model, tok, p, m.kind === 'in-context' ? { context: `${p.context}\n` } : { overrides }));
        } finally {
          overrides?.forEach((t) => t.release());
        }
      }
      outcomes.push(row);
    }
    while (outcomes.length < o.seeds.length) outcomes.push(outcomes[0]!);
    results.push({
      name: m.name,
      outcomes,
      nll: outcomes.map((r) => mean(r.map((x) => x.nll))),
      em: outcomes.map((r) => mean(r.map((x) => x.em))),
      msPerPassage: updates ? ms / updates : 0,
      examples,
    });
  }
  return results;
}

export interface ContinualResult {
  /** em[i][j]: exact match on passage j after the updates of passages 0..i (NaN for j > i). */
  em: number[][];
  nll: number[][];
}

/**
 * Passages' updates applied in sequence: update i is a fresh LoRA finetuned on top of the weights
 * left by updates 0..i−1, then merged into them; after each, every passage so far is scored.
 */
export async function continual(model: GPT2, tok: Tokenizer, passages: readonly Passage[], method: TextMethod, o: TextEvalOptions, seed: number): Promise<ContinualResult> {
  const gpu = model.gpu;
  let current = new Map<string, F32>();
  const em: number[][] = [];
  const nll: number[][] = [];
  try {
    const texts = await updateSources(model, tok, method, passages, { ...o.sampling, seed: seed * 1000 }, o.inner);
    for (const [i, text] of texts.entries()) {
      // The model as updates 0..i−1 left it: the base's tensors with the updated ones swapped in.
      const view = new GPT2(gpu, model.config, new Map([...model.params, ...current]));
      if (text !== null) {
        const next = await loraUpdate(view, tok, text, { ...o.inner, seed });
        for (const [n, t] of next) {
          current.get(n)?.release();
          current.set(n, t);
        }
      }
      const row = { em: new Array<number>(passages.length).fill(NaN), nll: new Array<number>(passages.length).fill(NaN) };
      for (let j = 0; j <= i; j++) {
        const s = await scorePassage(model, tok, passages[j]!, { overrides: current });
        row.em[j] = s.em;
        row.nll[j] = s.nll;
      }
      em.push(row.em);
      nll.push(row.nll);
    }
    return { em, nll };
  } finally {
    current.forEach((t) => t.release());
    current = new Map();
  }
}
