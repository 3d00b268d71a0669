// Self-edits (SEAL variant B): the model reads a passage and writes training data about it. The
// prompt is tasks/corpus.ts's selfEditPrompt — the passage, a newline, "Implications:" and a
// newline — after end-of-text, as pretraining's documents start; the model continues with
// statements, one per line, until end-of-text, a blank line (SELF_EDIT_STOP) or maxNew tokens.
// All samples of all passages go through the KV-cache generator as one batch; sample j of
// passage i draws from its own seeded stream, so a run is reproducible under its seed.
import type { F32 } from '../../gpu/tensor.ts';
import type { Tokenizer } from '../../io/tokenizer.ts';
import { generateTokens } from '../../model/generate.ts';
import type { GPT2 } from '../../model/gpt2.ts';
import { SELF_EDIT_STOP, selfEditPrompt } from '../../tasks/corpus.ts';
import type { Passage } from '../../tasks/squad.ts';

export interface SampleOptions {
  /** Self-edits per passage. */
  samples: number;
  temperature: number;
  topK?: number;
  /** Longest self-edit in tokens; also capped by what the context leaves after the prompt. */
  maxNew: number;
  seed: number;
}

export const DEFAULT_SAMPLING: SampleOptions = { samples: 4, temperature: 1, topK: 20, maxNew: 160, seed: 1 };

export interface SelfEdit {
  /** Index of the passage in the list sampled from. */
  passage: number;
  /** The self-edit, cut before the stop string (its last line keeps its newline). */
  text: string;
  /** The generated tokens up to and with the stop string: what the generator is trained on. */
  ids: number[];
  /** end-of-text / stop string / ran out of tokens. */
  finish: 'eot' | 'stop' | 'length';
}

/** The prompt as token ids: end-of-text, then the passage and the header. */
export const promptIds = (tok: Tokenizer, context: string): number[] => [tok.eot, ...tok.encode(selfEditPrompt(context))];

/**
 * o.samples self-edits per passage, in passage order, from the model (under `overrides`: e.g. the
 * generator's merged LoRA). Deterministic for a given seed.
 */
export async function sampleSelfEdits(
  model: GPT2,
  tok: Tokenizer,
  passages: readonly Passage[],
  o: SampleOptions,
  overrides?: ReadonlyMap<string, F32>,
): Promise<SelfEdit[]> {
  const prompts = passages.flatMap((p) => Array.from({ length: o.samples }, () => promptIds(tok, p.context)));
  if (prompts.length === 0) return [];
  const room = model.config.nCtx - Math.max(...prompts.map((p) => p.length));
  if (room < 1) throw new RangeError(`self-edit: a passage's prompt fills the model's context of ${model.config.nCtx} tokens`);
  const gens = await generateTokens(model, prompts, {
    maxNew: Math.min(o.maxNew, room),
    temperature: o.temperature,
    ...(o.topK ? { topK: o.topK } : {}),
    seed: o.seed,
    eot: tok.eot,
    overrides,
    stop: (g) => tok.decode(g.slice(-SELF_EDIT_STOP.length * 4)).includes(SELF_EDIT_STOP),
  });
  return gens.map((g, i) => {
    const text = tok.decode(g.tokens);
    const at = text.indexOf(SELF_EDIT_STOP);
    return { passage: Math.floor(i / o.samples), text: at >= 0 ? text.slice(0, at + 1) : text, ids: g.tokens, finish: g.finish };
  });
}
