// Scoring edits on a passage's own questions, with no passage in context. Each passage's questions
// are tokenised and uploaded once; scoring an edit is one forward under the edited weights. Many
// edits are encoded into one batch and read back together.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel, ParamMap } from '../model/lm.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';
import type { Passage } from '../tasks/squad.ts';
import { encodeQA } from '../tasks/qa.ts';
import { questionRole } from '../tasks/synthetic.ts';

interface EncodedPassage {
  tokens: Tensor<'u32'>;
  targets: Tensor<'u32'>;
  T: number;
  answerTokens: number[];
  /** Per item: 'scored' items make the reward; 'measured' ones only watch for reward hacking. */
  roles: ('scored' | 'measured')[];
  /** (B,T): d(scored answer NLL)/d(position loss), the weights of the meta-gradient's backward. */
  scoredWeights: Tensor<'f32'>;
}

export interface PassageScore {
  /** Mean answer NLL over the scored questions. */
  scored: number;
  /** Mean answer NLL over the measured questions (NaN when a passage has none). */
  measured: number;
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

  constructor(model: LanguageModel, tok: Tokenizer, passages: readonly Passage[]) {
    this.#model = model;
    const gpu = model.gpu;
    this.#encoded = passages.map((p) => {
      if (p.questions.length === 0) throw new RangeError(`passage ${p.id} has no questions to score an edit with`);
      const items = p.questions.map((q) => ({ question: q.question, answer: q.answers[0]! }));
      const e = encodeQA(tok, items, model.config.nCtx);
      const roles = p.questions.map((q) => roleOf(q.id));
      // The scored NLL is the mean over scored items of each item's mean answer-token loss.
      const nScored = roles.filter((r) => r === 'scored').length;
      const w = Float32Array.from(e.targets, (t, i) => {
        const b = Math.floor(i / e.T);
        return t !== IGNORE_INDEX && roles[b] === 'scored' ? 1 / (e.answerTokens[b]! * nScored) : 0;
      });
      return {
        tokens: gpu.tensor(e.tokens, [e.B, e.T]),
        targets: gpu.tensor(e.targets, [e.B, e.T]),
        T: e.T,
        answerTokens: e.answerTokens,
        roles,
        scoredWeights: gpu.tensor(w, [e.B, e.T]),
      };
    });
  }

  get size(): number {
    return this.#encoded.length;
  }

  /**
   * Encodes passage p's forward under `overrides`; the returned losses are read later. With `grads`,
   * also the backward of the scored answer NLL, accumulated into grads (a map like GPT2.zerosLike()).
   */
  encode(p: number, overrides?: ReadonlyMap<string, F32>, grads?: ParamMap): { losses: F32; release(): void } {
    const e = this.#encoded[p];
    if (!e) throw new RangeError(`no passage ${p} in this scorer (${this.#encoded.length})`);
    const pass = this.#model.forward(e.tokens, e.targets, overrides);
    if (grads) pass.backward(grads, e.scoredWeights);
    return { losses: pass.losses!, release: () => pass.release() };
  }

  /** Per-position losses of passage p (as read back) → its scored and measured mean NLL. */
  summarize(p: number, losses: Float32Array): PassageScore {
    const e = this.#encoded[p]!;
    const sums = { scored: [0, 0], measured: [0, 0] };
    e.answerTokens.forEach((n, b) => {
      let s = 0;
      for (let t = 0; t < e.T; t++) s += losses[b * e.T + t]!;
      const acc = sums[e.roles[b]!];
      acc[0]! += s / n;
      acc[1]!++;
    });
    return { scored: sums.scored[0]! / sums.scored[1]!, measured: sums.measured[1] ? sums.measured[0]! / sums.measured[1] : NaN };
  }

  /** Scores passages (each with its own overrides, or the base) in one batch. */
  async score(gpu: Gpu, jobs: readonly { p: number; overrides?: ReadonlyMap<string, F32>; before?: () => void }[]): Promise<PassageScore[]> {
    const passes = jobs.map((j) => {
      j.before?.();
      return this.encode(j.p, j.overrides);
    });
    try {
      const data = await gpu.readMany(passes.map((x) => x.losses));
      return jobs.map((j, i) => this.summarize(j.p, data[i] as Float32Array));
    } finally {
      for (const x of passes) x.release();
    }
  }

  release(): void {
    for (const e of this.#encoded) for (const t of [e.tokens, e.targets, e.scoredWeights]) t.release();
  }
}
