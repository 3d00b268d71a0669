// Scoring edits on a passage's own questions, with no passage in context. Each passage's questions
// are tokenised and uploaded once, and run once through the layers below the first tensor an edit
// may change (the shared prefix: the base weights there are never edited); scoring an edit is then
// a forward from that prefix under the edited weights, whose top (the last block from its attention
// projection on, and the output head) runs only at the answer positions, the ones with a loss. Many
// edits are encoded into one batch and read back together; several edits of one passage run as one
// pass of G variants (stacked per-edit weights, PassOptions.variants).
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { logitRows, type LanguageModel, type ParamMap, type Prefix } from '../model/lm.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';
import { rowIndex, type RowIndex } from '../ops/rows.ts';
import type { Passage } from '../tasks/squad.ts';
import { encodeQA } from '../tasks/qa.ts';
import { questionRole } from '../tasks/synthetic.ts';

interface EncodedPassage {
  tokens: Tensor<'u32'>;
  targets: Tensor<'u32'>;
  /** The answer positions (those with a target), in order: the rows the losses come back at. */
  rows: RowIndex;
  /** The item each of those rows belongs to. */
  rowItem: number[];
  answerTokens: number[];
  /** Per item: 'scored' items make the reward; 'measured' ones only watch for reward hacking. */
  roles: ('scored' | 'measured')[];
  /** [1, rows]: d(scored answer NLL)/d(row loss), the weights of the meta-gradient's backward. */
  scoredWeights: Tensor<'f32'>;
  /** The residual stream below the first editable tensor, or none when an edit may reach the embedding. */
  prefix: Prefix | null;
}

export interface PassageScore {
  /** Mean answer NLL over the scored questions. */
  scored: number;
  /** Mean answer NLL over the measured questions (NaN when a passage has none). */
  measured: number;
  /** Each question's mean answer-token NLL, in the passage's order (as tasks/qa.ts answerNll gives it). */
  items: Float64Array;
}

/**
 * Questions whose ids end in -a score the reward and -b only measure (the synthetic data's
 * convention); a passage from elsewhere scores with every question and measures with none.
 */
function roleOf(id: string): 'scored' | 'measured' {
  try {
    return questionRole(id);
  } catch {
    return 'scored';
  }
}

export class QAScorer {
  readonly #model: LanguageModel;
  readonly #encoded: EncodedPassage[];

  /** `editable`: every tensor an edit may override or differentiate (SEAL's mask). */
  constructor(model: LanguageModel, tok: Tokenizer, passages: readonly Passage[], editable: Iterable<string>) {
    this.#model = model;
    const gpu = model.gpu;
    const at = model.prefixPoint(editable);
    this.#encoded = passages.map((p) => {
      if (p.questions.length === 0) throw new RangeError(`passage ${p.id} has no questions to score an edit with`);
      const items = p.questions.map((q) => ({ question: q.question, answer: q.answers[0]! }));
      const e = encodeQA(tok, items, model.config.nCtx);
      const roles = p.questions.map((q) => roleOf(q.id));
      // The scored NLL is the mean over scored items of each item's mean answer-token loss.
      const nScored = roles.filter((r) => r === 'scored').length;
      const rows = [...e.targets.keys()].filter((i) => e.targets[i] !== IGNORE_INDEX);
      const rowItem = rows.map((i) => Math.floor(i / e.T));
      const w = Float32Array.from(rowItem, (b) => (roles[b] === 'scored' ? 1 / (e.answerTokens[b]! * nScored) : 0));
      const tokens = gpu.tensor(e.tokens, [e.B, e.T]);
      return {
        tokens,
        prefix: at ? model.prefix(tokens, at) : null,
        targets: gpu.tensor(e.targets, [e.B, e.T]),
        rows: rowIndex(gpu, rows, e.B * e.T),
        rowItem,
        answerTokens: e.answerTokens,
        roles,
        scoredWeights: gpu.tensor(w, [1, rows.length]),
      };
    });
  }

  get size(): number {
    return this.#encoded.length;
  }

  /** Answer rows of passage p: the losses per variant of its pass. */
  rows(p: number): number {
    return this.#passage(p).rows.idx.size;
  }

  /** How many variants (edits) of passage p one pass's logits binding holds. */
  fit(p: number): number {
    return Math.floor(logitRows(this.#model) / this.rows(p));
  }

  #passage(p: number): EncodedPassage {
    const e = this.#encoded[p];
    if (!e) throw new RangeError(`no passage ${p} in this scorer (${this.#encoded.length})`);
    return e;
  }

  /**
   * Encodes passage p's forward under `overrides` (stacked [G, ...] per-variant copies with
   * `variants` G: the losses are then G blocks of rows(p)); the returned losses are read later.
   * With `grads` (one variant only), also the backward of the scored answer NLL, accumulated into
   * grads (editable tensors only).
   */
  encode(p: number, overrides?: ReadonlyMap<string, F32>, grads?: ParamMap, variants = 1): { losses: F32; release(): void } {
    const e = this.#passage(p);
    const pass = this.#model.forward(e.tokens, e.targets, overrides, { rows: e.rows, variants, ...(e.prefix ? { prefix: e.prefix } : {}) });
    if (grads) pass.backward(grads, e.scoredWeights);
    return { losses: pass.losses!, release: () => pass.release() };
  }

  /** Passage p's losses at its answer rows (as read back) → its scored and measured mean NLL. */
  summarize(p: number, losses: Float32Array): PassageScore {
    const e = this.#encoded[p]!;
    const sums = { scored: [0, 0], measured: [0, 0] };
    const items = new Float64Array(e.answerTokens.length);
    e.rowItem.forEach((b, i) => (items[b]! += losses[i]!));
    e.answerTokens.forEach((n, b) => {
      items[b]! /= n;
      const acc = sums[e.roles[b]!];
      acc[0]! += items[b]!;
      acc[1]!++;
    });
    return { scored: sums.scored[0]! / sums.scored[1]!, measured: sums.measured[1] ? sums.measured[0]! / sums.measured[1] : NaN, items };
  }

  /**
   * Scores passages (each with its own overrides, or the base) in one batch; a job of `variants` G
   * (stacked overrides) gives G scores, in order. Overrides given as a function are written when
   * the job is encoded (scratch tensors the next job may rewrite: GPU order keeps each pass's).
   */
  async score(gpu: Gpu, jobs: readonly { p: number; overrides?: ReadonlyMap<string, F32> | (() => ReadonlyMap<string, F32>); variants?: number }[]): Promise<PassageScore[]> {
    const passes = jobs.map((j) => this.encode(j.p, typeof j.overrides === 'function' ? j.overrides() : j.overrides, undefined, j.variants));
    try {
      const data = await gpu.readMany(passes.map((x) => x.losses));
      return jobs.flatMap((j, i) => {
        const n = this.rows(j.p);
        return Array.from({ length: j.variants ?? 1 }, (_, g) => this.summarize(j.p, (data[i] as Float32Array).subarray(g * n, (g + 1) * n)));
      });
    } finally {
      for (const x of passes) x.release();
    }
  }

  release(): void {
    for (const e of this.#encoded) for (const t of [e.tokens, e.targets, e.rows.idx, e.scoredWeights, ...(e.prefix ? [e.prefix.x] : [])]) t.release();
  }
}
