// The outer loop of SEAL variant B: the model, through a LoRA adapter that is kept across rounds,
// is its own self-edit generator. A round samples self-edits for a batch of passages, gets each
// one's reward from the inner loop, and updates the generator adapter:
// - 'rest-em' (the paper's choice): keep the self-edits that beat the base (reward > 0; with
//   keep 'best', only the best such one per passage) and finetune the generator on them (SFT:
//   loss on the self-edit tokens after the prompt);
// - 'reinforce': policy gradient on the same rollouts, advantages normalised within each passage's
//   group (GRPO's baseline), loss −Σ A·log p(self-edit | prompt) per token, mean per sequence.
// Only the generator adapter trains; the base model's weights are read, never written.
import type { Tokenizer } from '../../io/tokenizer.ts';
import type { GPT2 } from '../../model/gpt2.ts';
import { LoraOptimizer, type Lora } from '../../model/lora.ts';
import { IGNORE_INDEX } from '../../ops/crossentropy.ts';
import type { Passage } from '../../tasks/squad.ts';
import { Rng } from '../../util/random.ts';
import type { Rewarder } from './inner.ts';
import { promptIds, sampleSelfEdits, type SampleOptions, type SelfEdit } from './selfedit.ts';

export interface OuterOptions {
  algo: 'rest-em' | 'reinforce';
  /** rest-em: every self-edit that beats the base, or only the best of those per passage. */
  keep: 'positive' | 'best';
  /** Generator updates per round (each a minibatch of `updateBatch` sequences). */
  updateSteps: number;
  updateBatch: number;
  lr: number;
  sampling: SampleOptions;
}

export const DEFAULT_OUTER: OuterOptions = {
  algo: 'rest-em',
  keep: 'positive',
  updateSteps: 8,
  updateBatch: 4,
  lr: 1e-3,
  sampling: { samples: 4, temperature: 1, topK: 20, maxNew: 160, seed: 1 },
};

export interface RoundResult {
  edits: SelfEdit[];
  rewards: number[];
  meanReward: number;
  /** Self-edits the generator was trained on (rest-em), or all rollouts (reinforce). */
  used: number;
  /** Mean training loss over the round's generator updates (NaN when none ran). */
  loss: number;
}

/** Sequences prompt + self-edit (+ end-of-text when it ended so), targets only on the self-edit's tokens. */
export function editBatch(tok: Tokenizer, passages: readonly Passage[], edits: readonly SelfEdit[], nCtx: number) {
  const seqs = edits.map((e) => {
    const prompt = promptIds(tok, passages[e.passage]!.context);
    const edit = [...e.ids, ...(e.finish === 'eot' ? [tok.eot] : [])].slice(0, nCtx + 1 - prompt.length);
    return { ids: [...prompt, ...edit], from: prompt.length };
  });
  const T = Math.max(1, ...seqs.map((s) => s.ids.length - 1));
  const B = seqs.length;
  const tokens = new Uint32Array(B * T);
  const targets = new Uint32Array(B * T).fill(IGNORE_INDEX);
  const counts = seqs.map((s, b) => {
    let n = 0;
    for (let t = 0; t < s.ids.length - 1; t++) {
      tokens[b * T + t] = s.ids[t]!;
      if (t + 1 >= s.from) (targets[b * T + t] = s.ids[t + 1]!), n++;
    }
    return n;
  });
  return { tokens, targets, B, T, counts };
}

/** Rewards normalised within each passage's group: (r − mean) / std, 0 where a group has no spread. */
export function groupAdvantages(edits: readonly SelfEdit[], rewards: readonly number[]): number[] {
  const groups = new Map<number, number[]>();
  edits.forEach((e, i) => groups.set(e.passage, [...(groups.get(e.passage) ?? []), i]));
  const adv = new Array<number>(edits.length).fill(0);
  for (const idx of groups.values()) {
    const rs = idx.map((i) => rewards[i]!);
    const mean = rs.reduce((a, b) => a + b, 0) / rs.length;
    const std = Math.sqrt(rs.reduce((a, r) => a + (r - mean) ** 2, 0) / rs.length);
    if (std > 1e-9) idx.forEach((i) => (adv[i] = (rewards[i]! - mean) / std));
  }
  return adv;
}

/** Which rollouts ReST-EM keeps. */
export function keptEdits(edits: readonly SelfEdit[], rewards: readonly number[], keep: OuterOptions['keep']): number[] {
  const positive = edits.map((_, i) => i).filter((i) => rewards[i]! > 0);
  if (keep === 'positive') return positive;
  const best = new Map<number, number>();
  for (const i of positive) {
    const p = edits[i]!.passage;
    if (!best.has(p) || rewards[i]! > rewards[best.get(p)!]!) best.set(p, i);
  }
  return [...best.values()].sort((a, b) => a - b);
}

export class SelfEditTrainer {
  readonly model: GPT2;
  readonly tok: Tokenizer;
  readonly generator: Lora;
  readonly options: OuterOptions;
  readonly #opt: LoraOptimizer;
  round = 0;

  constructor(model: GPT2, tok: Tokenizer, generator: Lora, options: OuterOptions) {
    this.model = model;
    this.tok = tok;
    this.generator = generator;
    this.options = options;
    this.#opt = new LoraOptimizer(model, generator, { lr: options.lr, weightDecay: 0, gradClip: 1 });
  }

  /** Self-edits from the current generator (its adapter merged into the base weights for generation). */
  async sample(passages: readonly Passage[], seed: number): Promise<SelfEdit[]> {
    const merged = this.generator.merged(this.model);
    try {
      return await sampleSelfEdits(this.model, this.tok, passages, { ...this.options.sampling, seed }, merged);
    } finally {
      merged.forEach((t) => t.release());
    }
  }

  /** One round on `passages` (the rewarder's SelfEdit.passage indices refer to this list). */
  async step(passages: readonly Passage[], rewarder: Rewarder, seed: number): Promise<RoundResult> {
    const o = this.options;
    const edits = await this.sample(passages, seed);
    const rewards = await rewarder.rewards(edits);
    const meanReward = rewards.reduce((a, b) => a + b, 0) / rewards.length;
    let chosen: number[];
    let weights: number[] | null = null;
    if (o.algo === 'rest-em') chosen = keptEdits(edits, rewards, o.keep);
    else {
      const adv = groupAdvantages(edits, rewards);
      chosen = edits.map((_, i) => i).filter((i) => adv[i] !== 0);
      weights = adv;
    }
    const losses: number[] = [];
    if (chosen.length > 0) {
      const rng = new Rng(seed ^ 0x5eed);
      let order: number[] = [];
      for (let s = 0; s < o.updateSteps; s++) {
        if (order.length === 0) order = rng.shuffle([...chosen]);
        const mb = order.splice(0, o.updateBatch);
        losses.push(await this.#update(passages, mb.map((i) => edits[i]!), weights ? mb.map((i) => weights[i]!) : null));
      }
    }
    this.round++;
    return { edits, rewards, meanReward, used: chosen.length, loss: losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : NaN };
  }

  /** One generator step on a minibatch: SFT (weights null) or the policy gradient with these advantages. */
  async #update(passages: readonly Passage[], edits: SelfEdit[], advantages: number[] | null): Promise<number> {
    const gpu = this.model.gpu;
    const b = editBatch(this.tok, passages, edits, this.model.config.nCtx);
    const tokens = gpu.tensor(b.tokens, [b.B, b.T]);
    const targets = gpu.tensor(b.targets, [b.B, b.T]);
    // d loss / d(per-token NLL): A_i / (n_i · B): the mean over sequences of each one's mean.
    const dl = advantages
      ? gpu.tensor(Float32Array.from(b.targets, (t, i) => {
          const s = Math.floor(i / b.T);
          return t === IGNORE_INDEX ? 0 : advantages[s]! / (b.counts[s]! * b.B);
        }), [b.B, b.T])
      : undefined;
    try {
      return await this.#opt.update(tokens, targets, dl);
    } finally {
      tokens.release();
      targets.release();
      dl?.release();
    }
  }

  release(): void {
    this.#opt.release();
  }
}
