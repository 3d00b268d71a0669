// The inner loop of SEAL variant B: a self-edit becomes a weight update by finetuning a fresh LoRA
// adapter on its text for k steps (optionally with the passage before it); the updated model then
// answers the passage's questions with no passage in context. reward = the drop in the scored
// questions' answer NLL against the base model (QAScorer: -a questions score, -b only measure).
import type { F32 } from '../../gpu/tensor.ts';
import type { Tokenizer } from '../../io/tokenizer.ts';
import type { GPT2 } from '../../model/gpt2.ts';
import { DEFAULT_LORA, Lora, LoraOptimizer, type LoraSpec } from '../../model/lora.ts';
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
}

export const DEFAULT_INNER: InnerOptions = { steps: 10, lr: 3e-3, lora: DEFAULT_LORA, withPassage: false, seed: 1 };

/** What the update trains on. */
export const updateText = (passage: Passage, edit: string, withPassage: boolean) => (withPassage ? `${passage.context}\n${edit}` : edit);

/**
 * A fresh adapter trained o.steps steps on `text`, returned merged (W + s·A·B per adapted weight:
 * overrides for GPT2.forward; the caller releases them). Empty text is no update (no overrides).
 */
export async function loraUpdate(model: GPT2, tok: Tokenizer, text: string, o: InnerOptions): Promise<Map<string, F32>> {
  if (text.trim() === '') return new Map();
  const gpu = model.gpu;
  const b = passageBatch(tok, text, model.config.nCtx);
  const tokens = gpu.tensor(b.tokens, [b.B, b.T]);
  const targets = gpu.tensor(b.targets, [b.B, b.T]);
  const lora = Lora.create(model, o.lora, o.seed);
  const opt = new LoraOptimizer(model, lora, { lr: o.lr, weightDecay: 0, gradClip: 1 });
  try {
    for (let i = 0; i < o.steps; i++) await opt.update(tokens, targets, undefined, o.lr, false);
    return lora.merged(model);
  } finally {
    opt.release();
    lora.release();
    tokens.release();
    targets.release();
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
    this.#scorer = new QAScorer(model, tok, passages, Lora.targets(model, options.lora));
  }

  /** The base model's scores, once. */
  async base(): Promise<PassageScore[]> {
    this.#base ??= await this.#scorer.score(this.model.gpu, this.passages.map((_, p) => ({ p })));
    return this.#base;
  }

  /** Trains on `text` for passage p and scores p's questions under the update. */
  async scoreText(p: number, text: string): Promise<UpdateScore> {
    const base = (await this.base())[p]!;
    const overrides = await loraUpdate(this.model, this.tok, text, this.options);
    try {
      const [s] = await this.#scorer.score(this.model.gpu, [{ p, overrides }]);
      return { ...s!, reward: base.scored - s!.scored };
    } finally {
      overrides.forEach((t) => t.release());
    }
  }

  async score(edits: readonly SelfEdit[]): Promise<UpdateScore[]> {
    const out: UpdateScore[] = [];
    for (const e of edits) out.push(await this.scoreText(e.passage, updateText(this.passages[e.passage]!, e.text, this.options.withPassage)));
    return out;
  }

  async rewards(edits: readonly SelfEdit[]): Promise<number[]> {
    return (await this.score(edits)).map((s) => s.reward);
  }

  release(): void {
    this.#scorer.release();
  }
}
