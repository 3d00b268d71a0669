// The inner loop of SEAL variant B: a self-edit becomes a weight update by finetuning a fresh LoRA
// adapter on its text for k steps (optionally with the passage before it); the updated model then
// answers the passage's questions with no passage in context. reward = the drop in the scored
// questions' answer NLL against the base model (QAScorer: -a questions score, -b only measure).
// Inner loops may run batched: up to `batch` self-edits train at once as one stacked LoRA (adapter g on
// text g's rows, each text padded to the same rows, its loss its own mean), one forward and
// backward per step for all of them; adapter g ends where training it alone would (within f32
// summation order), and the updated models are scored one after another.
import type { F32 } from '../../gpu/tensor.ts';
import type { Tokenizer } from '../../io/tokenizer.ts';
import type { GPT2 } from '../../model/gpt2.ts';
import { DEFAULT_LORA, Lora, LoraOptimizer, type LoraSpec } from '../../model/lora.ts';
import { IGNORE_INDEX } from '../../ops/crossentropy.ts';
import { passageBatch } from '../../tasks/corpus.ts';
import type { Passage } from '../../tasks/squad.ts';
import { QAScorer, type PassageScore } from '../reward.ts';
import type { SelfEdit } from './selfedit.ts';

export interface InnerOptions {
  /** Finetuning steps on the self-edit (k); each step is the whole text as one batch. */
  steps: number;
  lr: number;
  lora: LoraSpec;
  /** Train on the passage followed by the self-edit instead of the self-edit alone. */
  withPassage: boolean;
  /** Seed of every fresh adapter's A (the same for every self-edit, so rewards compare texts). */
  seed: number;
  /**
   * Self-edits whose inner loops train together, as one stacked adapter (memory grows with it);
   * default 1: on lavapipe batching measured slower (bench/inner-batch.ts: 0.66× at 16, 0.78× at 4).
   */
  batch?: number;
}

export const DEFAULT_INNER: InnerOptions = { steps: 10, lr: 3e-3, lora: DEFAULT_LORA, withPassage: false, seed: 1 };

/** What the update trains on. */
export const updateText = (passage: Passage, edit: string, withPassage: boolean) => (withPassage ? `${passage.context}\n${edit}` : edit);

/**
 * Fresh adapters trained o.steps steps on `texts` together (one stacked LoRA), each handed merged
 * (W + s·A·B per adapted weight: overrides for GPT2.forward) to `use` with its text's index, one
 * at a time; `use` owns them. Adapter i is what training on texts[i] alone gives, within f32
 * summation order. Empty text is no update (no overrides).
 */
export async function loraUpdates(model: GPT2, tok: Tokenizer, texts: readonly string[], o: InnerOptions, use: (i: number, overrides: Map<string, F32>) => Promise<void>): Promise<void> {
  const trained = texts.flatMap((t, i) => (t.trim() === '' ? [] : [i]));
  const lora = trained.length ? await trainStack(model, tok, trained.map((i) => texts[i]!), o) : null;
  try {
    for (let i = 0; i < texts.length; i++) {
      const g = trained.indexOf(i);
      await use(i, g < 0 ? new Map() : lora!.merged(model, g));
    }
  } finally {
    lora?.release();
  }
}

/** A fresh adapter trained on `text` alone, merged (the caller releases the overrides). */
export async function loraUpdate(model: GPT2, tok: Tokenizer, text: string, o: InnerOptions): Promise<Map<string, F32>> {
  let out = new Map<string, F32>();
  await loraUpdates(model, tok, [text], o, async (_, overrides) => void (out = overrides));
  return out;
}

/**
 * G = texts.length fresh adapters, stacked, trained o.steps steps: text g fills rows [g·R, (g+1)·R)
 * of one batch (each text's passageBatch rows, padded to R rows of T with ignored targets), and its
 * positions' losses weigh 1/(its target count), so each adapter's gradient is that of its own mean.
 */
export async function trainStack(model: GPT2, tok: Tokenizer, texts: readonly string[], o: InnerOptions): Promise<Lora> {
  const gpu = model.gpu;
  const batches = texts.map((t) => passageBatch(tok, t, model.config.nCtx));
  const [G, R, T] = [texts.length, Math.max(...batches.map((b) => b.B)), Math.max(...batches.map((b) => b.T))];
  const tokens = new Uint32Array(G * R * T);
  const targets = new Uint32Array(G * R * T).fill(IGNORE_INDEX);
  const weights = new Float32Array(G * R * T);
  batches.forEach((b, g) => {
    const count = b.targets.reduce((n, t) => n + (t === IGNORE_INDEX ? 0 : 1), 0);
    for (let row = 0; row < b.B; row++) {
      const [from, to] = [row * b.T, (g * R + row) * T];
      tokens.set(b.tokens.subarray(from, from + b.T), to);
      targets.set(b.targets.subarray(from, from + b.T), to);
      for (let t = 0; t < b.T; t++) if (b.targets[from + t] !== IGNORE_INDEX) weights[to + t] = 1 / count;
    }
  });
  const t = { tokens: gpu.tensor(tokens, [G * R, T]), targets: gpu.tensor(targets, [G * R, T]), dlosses: gpu.tensor(weights, [G * R, T]) };
  const lora = Lora.create(model, o.lora, o.seed, G);
  const opt = new LoraOptimizer(model, lora, { lr: o.lr, weightDecay: 0, gradClip: 1 });
  try {
    for (let i = 0; i < o.steps; i++) await opt.update(t.tokens, t.targets, t.dlosses, o.lr, false);
    return lora;
  } catch (e) {
    lora.release();
    throw e;
  } finally {
    opt.release();
    Object.values(t).forEach((x) => x.release());
  }
}

/** Rewards of self-edits: what the outer loop asks of the inner one (tests plug in others). */
export interface Rewarder {
  rewards(edits: readonly SelfEdit[]): Promise<number[]>;
}

export interface UpdateScore extends PassageScore {
  reward: number;
}

/** The knowledge task's inner loop over a fixed list of passages (SelfEdit.passage indexes it). */
export class InnerLoop implements Rewarder {
  readonly model: GPT2;
  readonly tok: Tokenizer;
  readonly passages: readonly Passage[];
  readonly options: InnerOptions;
  readonly #scorer: QAScorer;
  #base: PassageScore[] | null = null;

  constructor(model: GPT2, tok: Tokenizer, passages: readonly Passage[], options: InnerOptions) {
    this.model = model;
    this.tok = tok;
    this.passages = passages;
    this.options = options;
    if (options.batch !== undefined && !(Number.isInteger(options.batch) && options.batch >= 1)) throw new RangeError(`InnerLoop: batch must be a positive integer, got ${options.batch}`);
    this.#scorer = new QAScorer(model, tok, passages, Lora.targets(model, options.lora));
  }

  /** The base model's scores, once. */
  async base(): Promise<PassageScore[]> {
    this.#base ??= await this.#scorer.score(this.model.gpu, this.passages.map((_, p) => ({ p })));
    return this.#base;
  }

  /** Trains on `text` for passage p and scores p's questions under the update. */
  async scoreText(p: number, text: string): Promise<UpdateScore> {
    return (await this.#scoreTexts([p], [text]))[0]!;
  }

  score(edits: readonly SelfEdit[]): Promise<UpdateScore[]> {
    return this.#scoreTexts(
      edits.map((e) => e.passage),
      edits.map((e) => updateText(this.passages[e.passage]!, e.text, this.options.withPassage)),
    );
  }

  /** Updates from texts[i] for passages ps[i], trained `batch` at a time, each scored on its passage. */
  async #scoreTexts(ps: readonly number[], texts: readonly string[]): Promise<UpdateScore[]> {
    const base = await this.base();
    const out: UpdateScore[] = [];
    const batch = this.options.batch ?? 1;
    for (let i0 = 0; i0 < texts.length; i0 += batch) {
      await loraUpdates(this.model, this.tok, texts.slice(i0, i0 + batch), this.options, async (i, overrides) => {
        const p = ps[i0 + i]!;
        try {
          const [s] = await this.#scorer.score(this.model.gpu, [{ p, overrides }]);
          out[i0 + i] = { ...s!, reward: base[p]!.scored - s!.scored };
        } finally {
          overrides.forEach((t) => t.release());
        }
      });
    }
    return out;
  }

  async rewards(edits: readonly SelfEdit[]): Promise<number[]> {
    return (await this.score(edits)).map((s) => s.reward);
  }

  release(): void {
    this.#scorer.release();
  }
}
