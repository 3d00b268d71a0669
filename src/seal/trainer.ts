// The SEAL loop (DESIGN.md §1, variant A): per iteration, sample B passages × G edits from the
// policy, apply each to scratch copies of the masked tensors (the base stays frozen), score the
// edited model on the passage's questions, and update the policy with PPO (or ReST-EM). All
// tensors stay on the GPU; the host reads back rewards and a few scalars.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { GPT2 } from '../model/gpt2.ts';
import { add, axpy } from '../ops/elementwise.ts';
import { matmul } from '../ops/matmul.ts';
import { adamw, clipGradNorm } from '../ops/optimizer.ts';
import { gaussianLogProb, normalizeAdvantages, ppoLoss, ppoLossBackward, PpoStat } from '../ops/ppo.ts';
import { ForgettingProbe, sampleLines } from '../tasks/forgetting.ts';
import type { Passage } from '../tasks/squad.ts';
import { Rng } from '../util/random.ts';
import type { SealConfig } from './config.ts';
import { EditScratch, editSpace, type EditLayout } from './edits.ts';
import { passageFeatures, type PassageFeatures } from './features.ts';
import { headConfigs, makeHeads, meanActions, releaseHeads, type Head, type HeadArrays } from './heads.ts';
import type { Mask } from './mask.ts';
import { QAScorer, type PassageScore } from './reward.ts';

export interface SealData {
  train: Passage[];
  heldOut: Passage[];
  general: string[];
}

export interface IterationMetrics {
  iteration: number;
  /** Set when the iteration made no update, with why (e.g. a NaN reward). */
  skipped?: string;
  rewardMean: number;
  rewardStd: number;
  /** Mean scored-answer NLL drop from the base (the reward before the penalty). */
  improvement: number;
  /** The same on the measured questions: a reward that rises while this does not is hacking. */
  measuredImprovement: number;
  editNorm: number;
  clipFraction: number;
  approxKl: number;
  entropy: number;
  epochs: number;
  /** Approximate KL of the delta head when a step head leads the headline numbers. */
  deltaKl?: number;
  /** Mean sampled step along the passage gradient direction (step head). */
  stepSize?: number;
  /** ReST-EM: edits kept (reward > 0). */
  kept?: number;
  heldOutImprovement?: number;
  heldOutMeasured?: number;
  forgetting?: number;
  ms: { sample: number; score: number; update: number; eval: number; total: number };
}

/** What a resumed trainer restores: the heads' parameters and Adam moments, and the counters. */
export interface TrainerState {
  heads: HeadArrays;
  adamStep: number;
  iteration: number;
}

/** The per-iteration generator: a resumed run draws exactly what an uninterrupted one would. */
export const iterationRng = (seed: number, iteration: number) => new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(iteration + 1, 0x85ebca6b)) >>> 0);

const std = (xs: number[], m: number) => Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(1, xs.length - 1));
const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export class SealTrainer {
  readonly gpu: Gpu;
  readonly model: GPT2;
  readonly config: SealConfig;
  readonly mask: Mask;
  readonly layout: EditLayout;
  readonly heads: Head[];
  /** AdamW step count, shared by the heads (they update together). */
  adamStep = 0;
  iteration = 0;
  readonly #trainScorer: QAScorer;
  readonly #heldScorer: QAScorer;
  readonly #forgetting: ForgettingProbe;
  readonly #scratch: EditScratch;
  readonly #trainFeatures: PassageFeatures[];
  readonly #heldFeatures: PassageFeatures[];
  readonly #trainBase: PassageScore[];
  readonly #heldBase: PassageScore[];

  private constructor(init: {
    model: GPT2;
    config: SealConfig;
    mask: Mask;
    layout: EditLayout;
    heads: Head[];
    adamStep: number;
    iteration: number;
    trainScorer: QAScorer;
    heldScorer: QAScorer;
    forgetting: ForgettingProbe;
    trainFeatures: PassageFeatures[];
    heldFeatures: PassageFeatures[];
    trainBase: PassageScore[];
    heldBase: PassageScore[];
  }) {
    this.gpu = init.model.gpu;
    this.model = init.model;
    this.config = init.config;
    this.mask = init.mask;
    this.layout = init.layout;
    this.heads = init.heads;
    this.adamStep = init.adamStep;
    this.iteration = init.iteration;
    this.#trainScorer = init.trainScorer;
    this.#heldScorer = init.heldScorer;
    this.#forgetting = init.forgetting;
    this.#trainFeatures = init.trainFeatures;
    this.#heldFeatures = init.heldFeatures;
    this.#trainBase = init.trainBase;
    this.#heldBase = init.heldBase;
    this.#scratch = new EditScratch(this.gpu, init.model.params, init.layout);
  }

  /**
   * Builds a trainer on a frozen model: resolves the mask, computes every passage's features and
   * the base scores once. `resume` restores the policy, its optimizer and the iteration count.
   */
  static async create(
    model: GPT2,
    tok: Tokenizer,
    config: SealConfig,
    data: SealData,
    resume?: TrainerState,
    onProgress?: (what: string, done: number, total: number) => void,
  ): Promise<SealTrainer> {
    const gpu = model.gpu;
    if (data.train.length < config.batch) throw new RangeError(`batch ${config.batch} is larger than the training split (${data.train.length} passages)`);
    const { mask, layout, layer } = editSpace(model, config);
    // The gradient direction is a dense delta: it only makes sense for dense edits.
    const withGrad = config.features === 'pooled+grad';
    if (withGrad && config.edit !== 'dense') throw new RangeError("features 'pooled+grad' needs dense edits (the gradient is a dense delta); use features 'pooled' with low-rank edits");
    const heldOut = data.heldOut.slice(0, config.heldOutCount);
    const all = [...data.train, ...heldOut];
    const features: PassageFeatures[] = [];
    for (const [i, p] of all.entries()) {
      features.push(await passageFeatures(model, tok, p.context, layer, withGrad ? mask : undefined));
      onProgress?.('features', i + 1, all.length);
    }
    const trainScorer = new QAScorer(model, tok, data.train);
    const heldScorer = new QAScorer(model, tok, heldOut);
    const trainBase = await trainScorer.score(gpu, data.train.map((_, p) => ({ p })));
    const heldBase = await heldScorer.score(gpu, heldOut.map((_, p) => ({ p })));
    const forgetting = await ForgettingProbe.create(model, tok, sampleLines(data.general, config.forgettingLines, config.seed));
    const heads = makeHeads(gpu, config, headConfigs(config, model.config.nEmbd, layout.actionDim), resume?.heads);
    return new SealTrainer({
      model,
      config,
      mask,
      layout,
      heads,
      adamStep: resume?.adamStep ?? 0,
      iteration: resume?.iteration ?? 0,
      trainScorer,
      heldScorer,
      forgetting,
      trainFeatures: features.slice(0, data.train.length),
      heldFeatures: features.slice(data.train.length),
      trainBase,
      heldBase,
    });
  }

  /** Contexts (and gradient directions) for the given passages, one row each, uploaded. */
  #inputs(feats: readonly PassageFeatures[]): { ctx: F32; dirs?: F32 } {
    const d = this.model.config.nEmbd;
    const D = this.layout.actionDim;
    const ctx = new Float32Array(feats.length * d);
    feats.forEach((f, i) => ctx.set(f.pooled, i * d));
    const out: { ctx: F32; dirs?: F32 } = { ctx: this.gpu.tensor(ctx, [feats.length, d]) };
    if (this.#step) {
      const dirs = new Float32Array(feats.length * D);
      feats.forEach((f, i) => dirs.set(f.direction!, i * D));
      out.dirs = this.gpu.tensor(dirs, [feats.length, D]);
    }
    return out;
  }

  get #step(): Head | undefined {
    return this.heads.find((h) => h.name === 'step');
  }

  /**
   * Applies edit rows[i] (delta row, plus sizes[row] along that dirs row) to passage ps[i] of
   * `scorer`, scores every edit in one batch, and gives ‖θ' − θ‖ per edit.
   */
  async #scoreEdits(
    scorer: QAScorer,
    ps: readonly number[],
    delta: F32,
    dirs?: F32,
    sizes?: ArrayLike<number>,
    rows: readonly number[] = [...ps.keys()],
  ): Promise<{ scores: PassageScore[]; norms: number[] }> {
    const gpu = this.gpu;
    const a = this.config.alpha;
    const norms: F32[] = [];
    const scores = await scorer.score(
      gpu,
      ps.map((p, i) => ({
        p,
        overrides: this.#scratch.overrides,
        before: () => {
          const row = rows[i]!;
          this.#scratch.apply(delta, row, a, dirs && sizes ? { dirs, row, size: sizes[row]! } : undefined);
          norms.push(this.#scratch.squaredNorm());
        },
      })),
    );
    const sq = await gpu.readMany(norms);
    for (const t of norms) t.release();
    return { scores, norms: sq.map((x) => Math.sqrt(x[0]!)) };
  }

  /** One iteration: sample, score, update. Returns its metrics; a NaN reward skips the update. */
  async step(): Promise<IterationMetrics> {
    const gpu = this.gpu;
    const c = this.config;
    const t0 = performance.now();
    const rng = iterationRng(c.seed, this.iteration);
    const N = c.batch * c.group;
    const chosen = rng.shuffle([...this.#trainFeatures.keys()]).slice(0, c.batch);
    const ps = chosen.flatMap((p) => Array<number>(c.group).fill(p));
    const { ctx, dirs } = this.#inputs(ps.map((p) => this.#trainFeatures[p]!));

    // Sample every head: actions and their log-probabilities under the sampling policy.
    const samples = this.heads.map((h) => {
      const D = h.policy.config.actionDim;
      const pass = h.policy.forward(ctx);
      const noise = gpu.tensor(rng.normalArray(N * D), [N, D]);
      const actions = h.policy.sample(pass.mu, noise);
      const logpOld = gaussianLogProb(gpu, pass.mu, h.policy.params.get('log_std')!, actions);
      pass.release();
      noise.release();
      return { head: h, actions, logpOld };
    });
    const stepSample = samples.find((s) => s.head.name === 'step');
    // Step sizes are per-edit scalars on the host: N floats, read once.
    const sizes = stepSample ? await gpu.read(stepSample.actions) : undefined;
    const t1 = performance.now();

    // A non-finite step size cannot even be applied: its edit scores as a NaN reward.
    const finite = (i: number) => !sizes || Number.isFinite(sizes[i]!);
    const scored = ps.map((_, i) => i).filter(finite);
    const { scores, norms } = await this.#scoreEdits(this.#trainScorer, scored.map((i) => ps[i]!), samples[0]!.actions, dirs, sizes, scored);
    const at = new Map(scored.map((i, k) => [i, k]));
    const improvement = ps.map((p, i) => (at.has(i) ? this.#trainBase[p]!.scored - scores[at.get(i)!]!.scored : NaN));
    const measured = ps.map((p, i) => (at.has(i) ? this.#trainBase[p]!.measured - scores[at.get(i)!]!.measured : NaN));
    const rewards = improvement.map((imp, i) => (at.has(i) ? imp - c.penalty * norms[at.get(i)!]! ** 2 : NaN));
    const t2 = performance.now();

    const rewardMean = avg(rewards);
    const m: IterationMetrics = {
      iteration: this.iteration,
      rewardMean,
      rewardStd: std(rewards, rewardMean),
      improvement: avg(improvement),
      measuredImprovement: avg(measured.filter((x) => !Number.isNaN(x))),
      editNorm: avg(norms.filter(Number.isFinite)),
      clipFraction: 0,
      approxKl: 0,
      entropy: 0,
      epochs: 0,
      ms: { sample: t1 - t0, score: t2 - t1, update: 0, eval: 0, total: 0 },
    };
    if (sizes) m.stepSize = avg(Array.from(sizes));
    if (!rewards.every(Number.isFinite)) {
      m.skipped = `non-finite reward in ${rewards.filter((r) => !Number.isFinite(r)).length} of ${N} edits`;
    } else if (c.algo === 'ppo') {
      Object.assign(m, await this.#ppoUpdate(ctx, samples, rewards));
    } else {
      Object.assign(m, await this.#restUpdate(ctx, samples, rewards));
    }
    for (const s of samples) {
      s.actions.release();
      s.logpOld.release();
    }
    ctx.release();
    dirs?.release();
    const t3 = performance.now();
    m.ms.update = t3 - t2;
    this.iteration++;
    if (this.iteration % c.evalEvery === 0 || this.iteration === c.iterations) {
      Object.assign(m, await this.evaluateHeldOut());
    }
    m.ms.eval = performance.now() - t3;
    m.ms.total = performance.now() - t0;
    return m;
  }

  /**
   * PPO epochs over the whole batch, each head with its own ratio and clip against the same
   * advantages. A head whose approximate KL passes 1.5·targetKl stops updating for the rest of the
   * iteration (checked before each update); the others go on.
   */
  async #ppoUpdate(ctx: F32, samples: readonly { head: Head; actions: F32; logpOld: F32 }[], rewards: number[]) {
    const gpu = this.gpu;
    const c = this.config;
    const raw = gpu.tensor(Float32Array.from(rewards));
    const advantages = normalizeAdvantages(gpu, raw, c.normalize === 'group' ? c.group : rewards.length);
    raw.release();
    const cfg = { clip: c.clip, entropyCoef: c.entropyCoef };
    const stats: number[][] = samples.map(() => [0, 0, 0, 0, 0]);
    const active = samples.map(() => true);
    let epochs = 0;
    for (let e = 0; e < c.epochs && active.some(Boolean); e++) {
      const passes = samples.filter((_, i) => active[i]).map((s) => {
        const pass = s.head.policy.forward(ctx);
        const batch = { mu: pass.mu, logStd: s.head.policy.params.get('log_std')!, actions: s.actions, logpOld: s.logpOld, advantages };
        return { s, pass, batch, fwd: ppoLoss(gpu, batch, cfg) };
      });
      const read = await gpu.readMany(passes.map((p) => p.fwd.stats));
      const updating = passes.filter((p, i) => {
        const k = samples.indexOf(p.s);
        stats[k] = Array.from(read[i]!);
        if (stats[k]![PpoStat.approxKl]! > 1.5 * c.targetKl) active[k] = false;
        return active[k];
      });
      for (const { s, pass, batch, fwd } of updating) {
        const { dMu, dLogStd } = ppoLossBackward(gpu, batch, fwd.ratio, cfg);
        this.#zeroGrads(s.head);
        pass.backward(dMu, s.head.grads);
        axpy(gpu, 1, dLogStd, s.head.grads.get('log_std')!);
        dMu.release();
        dLogStd.release();
      }
      if (updating.length) {
        this.#applyGrads(updating.map((p) => p.s.head));
        epochs++;
      }
      for (const { pass, fwd } of passes) {
        for (const t of [fwd.logp, fwd.ratio, fwd.stats]) t.release();
        pass.release();
      }
    }
    advantages.release();
    // Headline diagnostics from the last head (the step head when there is one: the one that moves).
    const last = stats[stats.length - 1]!;
    return {
      clipFraction: last[PpoStat.clipFraction]!,
      approxKl: last[PpoStat.approxKl]!,
      entropy: last[PpoStat.entropy]!,
      epochs,
      ...(samples.length > 1 ? { deltaKl: stats[0]![PpoStat.approxKl]! } : {}),
    };
  }

  /** ReST-EM: keep the edits that beat the base (reward > 0) and regress each head's mean onto them. */
  async #restUpdate(ctx: F32, samples: readonly { head: Head; actions: F32 }[], rewards: number[]) {
    const gpu = this.gpu;
    const N = rewards.length;
    const kept = rewards.map((r) => r > 0);
    const count = kept.filter(Boolean).length;
    if (count === 0) return { epochs: 0, kept: 0 };
    // d/dμ of Σᵢ wᵢ·½‖μᵢ − aᵢ‖² with wᵢ = 1/count for kept edits: diag(w)·(μ − a), as a matmul.
    const w = new Float32Array(N * N);
    kept.forEach((k, i) => (w[i * N + i] = k ? 1 / count : 0));
    const weights = gpu.tensor(w, [N, N]);
    for (let e = 0; e < this.config.epochs; e++) {
      for (const s of samples) {
        const pass = s.head.policy.forward(ctx);
        const diff = add(gpu, pass.mu, s.actions, -1);
        const dMu = matmul(gpu, weights, diff) as F32;
        this.#zeroGrads(s.head);
        pass.backward(dMu, s.head.grads);
        for (const t of [diff, dMu]) t.release();
        pass.release();
      }
      this.#applyGrads(this.heads);
    }
    weights.release();
    return { epochs: this.config.epochs, kept: count };
  }

  #zeroGrads(h: Head): void {
    for (const g of h.grads.values()) this.gpu.clear(g);
  }

  /** Clips each head's gradient norm and takes one AdamW step on the given heads. */
  #applyGrads(heads: readonly Head[]): void {
    const gpu = this.gpu;
    const c = this.config;
    this.adamStep++;
    for (const h of heads) {
      clipGradNorm(gpu, [...h.grads.values()], c.gradClip).release();
      for (const [name, p] of h.policy.params) {
        if (name === 'log_std' && !c.learnStd) continue;
        if (h.lr > 0) adamw(gpu, p, h.grads.get(name)!, h.m.get(name)!, h.v.get(name)!, this.adamStep, { lr: h.lr, weightDecay: 0 });
      }
    }
  }

  /** The mean edit (no sampling) of each held-out passage: answer-NLL drop and forgetting. */
  async evaluateHeldOut(): Promise<{ heldOutImprovement: number; heldOutMeasured: number; forgetting: number }> {
    const { ctx, dirs } = this.#inputs(this.#heldFeatures);
    const { delta, sizes } = await meanActions(this.heads, ctx);
    if (sizes && !sizes.every(Number.isFinite)) {
      for (const t of [ctx, ...(dirs ? [dirs] : [])]) t.release();
      delta.release();
      return { heldOutImprovement: NaN, heldOutMeasured: NaN, forgetting: NaN };
    }
    const ps = [...this.#heldFeatures.keys()];
    const { scores } = await this.#scoreEdits(this.#heldScorer, ps, delta.mu, dirs, sizes);
    // Forgetting: general-text loss under the first held-out passage's edit.
    this.#scratch.apply(delta.mu, 0, this.config.alpha, dirs && sizes ? { dirs, row: 0, size: sizes[0]! } : undefined);
    const forgetting = await this.#forgetting.measure(this.#scratch.overrides);
    for (const t of [ctx, ...(dirs ? [dirs] : [])]) t.release();
    delta.release();
    return {
      heldOutImprovement: avg(scores.map((s, p) => this.#heldBase[p]!.scored - s.scored)),
      heldOutMeasured: avg(scores.map((s, p) => this.#heldBase[p]!.measured - s.measured).filter((x) => !Number.isNaN(x))),
      forgetting,
    };
  }

  release(): void {
    this.#scratch.release();
    this.#trainScorer.release();
    this.#heldScorer.release();
    releaseHeads(this.heads);
  }
}
