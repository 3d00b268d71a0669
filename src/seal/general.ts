// Forgetting: the LM loss on general text that is about no passage, under an edit vs the base.
import type { F32, Tensor } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { GPT2 } from '../model/gpt2.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';

export class GeneralTextScorer {
  readonly #model: GPT2;
  readonly #tokens: Tensor<'u32'>;
  readonly #targets: Tensor<'u32'>;

  /** Lines of text, each scored as its own sequence (cut to the context). */
  constructor(model: GPT2, tok: Tokenizer, lines: readonly string[]) {
    if (lines.length === 0) throw new RangeError('general text: no lines to measure forgetting on');
    this.#model = model;
    const seqs = lines.map((l) => [tok.eot, ...tok.encode(l)].slice(0, model.config.nCtx + 1));
    const T = Math.max(...seqs.map((s) => s.length - 1));
    const tokens = new Uint32Array(lines.length * T);
    const targets = new Uint32Array(lines.length * T).fill(IGNORE_INDEX);
    seqs.forEach((s, b) => {
      for (let t = 0; t < s.length - 1; t++) {
        tokens[b * T + t] = s[t]!;
        targets[b * T + t] = s[t + 1]!;
      }
    });
    this.#tokens = model.gpu.tensor(tokens, [lines.length, T]);
    this.#targets = model.gpu.tensor(targets, [lines.length, T]);
  }

  /** Mean token NLL over all lines, under `overrides` (or the base). */
  async loss(overrides?: ReadonlyMap<string, F32>): Promise<number> {
    const pass = this.#model.forward(this.#tokens, this.#targets, overrides);
    try {
      return await this.#model.gpu.scalar(pass.loss!);
    } finally {
      pass.release();
    }
  }

  release(): void {
    this.#tokens.release();
    this.#targets.release();
  }
}
