// The SEAL loop (docs/ARCHITECTURE.md, SEAL variant A). Per iteration it picks B training
// passages and improves the edit generator by one of three algorithms on the same generator:
//  - ppo: G sampled edits per passage, rewards from the edited model, the clipped surrogate;
//  - rest-em: the same samples, then regress the mean onto the edits that beat the base;
//  - meta: no sampling; the post-edit answer loss is backpropagated through the edit into the
//    generator (as MEND trains its editor): dL/dcoef from the model's backward, then the MLP's.
// The validation split (never trained on) is scored every few iterations; the generator kept at the
// end is the one with the best validation reward. The held-out split is not read here at all.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32, Tensor } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel } from '../model/lm.ts';
import { add, axpy } from '../ops/elementwise.ts';
import { gatherRows } from '../ops/decode.ts';
import { matmul } from '../ops/matmul.ts';
import { adamw, clipGradNorm } from '../ops/optimizer.ts';
import { gaussianLogProb, normalizeAdvantages, ppoLoss, ppoLossBackward, PpoStat } from '../ops/ppo.ts';
import { normal } from '../ops/random.ts';
import { ForgettingProbe, sampleLines } from '../tasks/forgetting.ts';
import type { Passage } from '../tasks/squad.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import type { SealConfig } from './config.ts';
import { concat, Generator, type GeneratorArrays } from './generator.ts';
import type { PolicyPass } from './policy.ts';
import { editSpace, QATask, type EditJob, type EditOutcome, type EditTask } from './task.ts';

export interface SealData {
  train: Passage[];
  validation: Passage[];
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
  /** PPO only. */
  clipFraction?: number;
  approxKl?: number;
  entropy?: number;
  epochs: number;
  /** ReST-EM: edits kept (reward > 0 and ≥ the group's mean). */
  kept?: number;
  /** Mean edits on the validation split: reward, NLL drops, and forgetting on general text. */
  validationReward?: number;
  validationImprovement?: number;
  validationMeasured?: number;
  forgetting?: number;
  ms: { sample: number; score: number; update: number; eval: number; total: number };
}

/** The generator with the best validation reward so far. */
export interface BestSnapshot {
  iteration: number;
  reward: number;
  arrays: GeneratorArrays;
}

/** What a resumed trainer restores: the generator and its Adam moments, the counters, the best snapshot. */
export interface TrainerState {
  generator: GeneratorArrays;
  adamStep: number;
  iteration: number;
  best?: BestSnapshot;
}

/**
 * The per-iteration choice of passages (on the host); the sampling noise is the GPU stream keyed by
 * (seed, iteration). Either way a resumed run draws exactly what an uninterrupted one would.
 */
export const iterationRng = (seed: number, iteration: number) => new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(iteration + 1, 0x85ebca6b)) >>> 0);

const avg = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: readonly number[], m: number) => Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(1, xs.length - 1));

export interface TrainerParts {
  config: SealConfig;
  train: EditTask;
  validation: EditTask;
  generator: Generator;
  /** General-text NLL change under each edit of the validation task (QA tasks only). */
  forgetting?: (jobs: readonly EditJob[]) => Promise<number[]>;
  state?: TrainerState;
  release?: () => void;
}

export class SealTrainer {
  readonly gpu: Gpu;
  readonly config: SealConfig;
  readonly train: EditTask;
  readonly validation: EditTask;
  readonly generator: Generator;
  /** AdamW step count. */
  adamStep: number;
  iteration: number;
  best: BestSnapshot | undefined;
  readonly #forgetting: TrainerParts['forgetting'];
  readonly #release: TrainerParts['release'];
  /** Every passage's pooled features, [size, featureDim] on the GPU: uploaded once, rows gathered per step. */
  readonly #trainFeatures: F32;
  readonly #validationFeatures: F32;
  /**
   * Sample i of a sampled step is one of chosen passage ⌊i/G⌋'s G: `#spread` [N] copies a passage's
   * μ to its samples, `#groupSum` [B, N] sums their gradients back. The policy then runs on the B
   * passages, not on N = B·G copies of them.
   */
  readonly #spread: Tensor<'u32'>;
  readonly #groupSum: F32;

  constructor(parts: TrainerParts) {
    this.config = parts.config;
    this.train = parts.train;
    this.validation = parts.validation;
    this.generator = parts.generator;
    this.gpu = parts.generator.policy.gpu;
    this.adamStep = parts.state?.adamStep ?? 0;
    this.iteration = parts.state?.iteration ?? 0;
    this.best = parts.state?.best;
    this.#forgetting = parts.forgetting;
    this.#release = parts.release;
    if (parts.config.batch > parts.train.size) throw new UserError(`batch ${parts.config.batch} is larger than the training split (${parts.train.size} passages)`);
    const upload = (t: EditTask) => this.gpu.tensor(concat([...Array(t.size).keys()].map((p) => t.pooled(p))), [t.size, t.featureDim], 'f32', 'seal.features');
    this.#trainFeatures = upload(parts.train);
    this.#validationFeatures = upload(parts.validation);
    const { batch: B, group: G } = parts.config;
    const N = B * G;
    this.#spread = this.gpu.tensor(Uint32Array.from({ length: N }, (_, i) => Math.floor(i / G)), [N], 'u32', 'seal.spread');
    const sum = new Float32Array(B * N);
    for (let i = 0; i < N; i++) sum[Math.floor(i / G) * N + i] = 1;
    this.#groupSum = this.gpu.tensor(sum, [B, N], 'f32', 'seal.groupSum');
  }

  /**
   * SEAL on a frozen GPT-2: resolves the mask, computes every passage's features and base scores
   * once, and builds (or, with `resume`, restores) the generator.
   */
  static async create(
    model: LanguageModel,
    tok: Tokenizer,
    config: SealConfig,
    data: SealData,
    resume?: TrainerState,
    onProgress?: (done: number, total: number) => void,
    /** Hands the training passages' scoring elsewhere (src/scale/remote-task.ts: to workers through a queue). */
    scoring?: (local: EditTask, generator: Generator) => EditTask,
  ): Promise<SealTrainer> {
    const { mask, layer, spec } = editSpace(model, config);
    const validation = data.validation.slice(0, config.validationCount);
    const total = data.train.length + validation.length;
    const train = await QATask.create(model, tok, data.train, mask, spec, layer, (d) => onProgress?.(d, total));
    const val = await QATask.create(model, tok, validation, mask, spec, layer, (d) => onProgress?.(data.train.length + d, total));
    const probe = await ForgettingProbe.create(model, tok, sampleLines(data.general, config.forgettingLines, config.seed));
    const generator = Generator.create(model.gpu, Generator.policyConfig(config, model.config.nEmbd, train.actionDim), config.seed, resume?.generator);
    return new SealTrainer({
      config,
      train: scoring ? scoring(train, generator) : train,
      validation: val,
      generator,
      forgetting: (jobs) => val.forgetting(probe, jobs),
      ...(resume ? { state: resume } : {}),
      release: () => {
        train.release();
        val.release();
        probe.release();
      },
    });
  }

  /** One iteration: pick passages, learn from their edits. Returns its metrics; a NaN reward skips the update. */
  async step(): Promise<IterationMetrics> {
    const c = this.config;
    const t0 = performance.now();
    const rng = iterationRng(c.seed, this.iteration);
    const chosen = rng.shuffle([...Array(this.train.size).keys()]).slice(0, c.batch);
    const m = c.algo === 'meta' ? await this.#metaStep(chosen) : await this.#sampledStep(chosen);
    this.iteration++;
    const t1 = performance.now();
    if (this.iteration % c.evalEvery === 0 || this.iteration === c.iterations) Object.assign(m, await this.evaluateValidation());
    m.ms.eval = performance.now() - t1;
    m.ms.total = performance.now() - t0;
    return m;
  }

  #summary(outcomes: readonly EditOutcome[], rewards: readonly number[]) {
    const rewardMean = avg(rewards);
    return {
      iteration: this.iteration,
      rewardMean,
      rewardStd: std(rewards, rewardMean),
      improvement: avg(outcomes.map((o) => o.improvement)),
      measuredImprovement: avg(outcomes.map((o) => o.measured).filter((x) => !Number.isNaN(x))),
      editNorm: avg(outcomes.map((o) => o.norm).filter(Number.isFinite)),
    };
  }

  #reward = (o: EditOutcome) => o.improvement - this.config.penalty * o.norm ** 2;

  /** Meta-gradient: the generator's mean edits, d(post-edit loss)/d(coefficients), one AdamW step. */
  async #metaStep(chosen: number[]): Promise<IterationMetrics> {
    const gpu = this.gpu;
    const c = this.config;
    const t0 = performance.now();
    const K = this.generator.actionDim;
    const ctx = this.#contexts(chosen);
    const pass = this.generator.policy.forward(ctx);
    const mu = (await gpu.read(pass.mu)) as Float32Array;
    const t1 = performance.now();
    if (!mu.every(Number.isFinite)) {
      pass.release();
      ctx.release();
      const nan = { rewardMean: NaN, rewardStd: NaN, improvement: NaN, measuredImprovement: NaN, editNorm: NaN };
      return { iteration: this.iteration, ...nan, epochs: 0, skipped: 'non-finite coefficients from the generator', ms: { sample: t1 - t0, score: 0, update: 0, eval: 0, total: 0 } };
    }
    const jobs = chosen.map((p, i) => ({ p, coef: mu.subarray(i * K, (i + 1) * K) }));
    const outcomes = await this.train.gradients(jobs, c.penalty, { iteration: this.iteration });
    const t2 = performance.now();
    const rewards = outcomes.map(this.#reward);
    const m: IterationMetrics = { ...this.#summary(outcomes, rewards), epochs: 0, ms: { sample: t1 - t0, score: t2 - t1, update: 0, eval: 0, total: 0 } };
    const dMu = Float32Array.from(concat(outcomes.map((o) => Float32Array.from(o.grad))), (g) => g / chosen.length);
    if (!rewards.every(Number.isFinite) || !dMu.every(Number.isFinite)) {
      m.skipped = `non-finite loss or gradient in ${rewards.filter((r) => !Number.isFinite(r)).length || 'some'} of ${chosen.length} edits`;
    } else {
      const d = gpu.tensor(dMu, [chosen.length, K]);
      this.#zeroGrads();
      pass.backward(d, this.generator.grads);
      d.release();
      this.#applyGrads();
      m.epochs = 1;
    }
    pass.release();
    ctx.release();
    m.ms.update = performance.now() - t2;
    return m;
  }

  /** PPO or ReST-EM: G sampled edits per chosen passage, scored, then the update. */
  async #sampledStep(chosen: number[]): Promise<IterationMetrics> {
    const gpu = this.gpu;
    const c = this.config;
    const t0 = performance.now();
    const K = this.generator.actionDim;
    const ps = chosen.flatMap((p) => Array<number>(c.group).fill(p));
    const N = ps.length;
    const ctx = this.#contexts(chosen);
    const policy = this.generator.policy;
    const { pass, mu } = this.#sampledForward(ctx);
    const noise = normal(gpu, [N, K], { seed: c.seed, stream: this.iteration });
    const actions = policy.sample(mu, noise);
    const logpOld = gaussianLogProb(gpu, mu, policy.params.get('log_std')!, actions);
    for (const t of [pass, mu, noise]) t.release();
    const a = (await gpu.read(actions)) as Float32Array;
    const t1 = performance.now();
    // A non-finite coefficient cannot even be applied: its edit scores as a NaN reward.
    const jobs = ps.map((p, i) => ({ p, coef: a.subarray(i * K, (i + 1) * K) }));
    const finite = jobs.map((j) => Array.from(j.coef).every(Number.isFinite));
    const scored = await this.train.score(jobs.filter((_, i) => finite[i]), { iteration: this.iteration });
    const nan: EditOutcome = { improvement: NaN, measured: NaN, norm: NaN };
    let k = 0;
    const outcomes = jobs.map((_, i) => (finite[i] ? scored[k++]! : nan));
    const rewards = outcomes.map(this.#reward);
    const t2 = performance.now();
    const m: IterationMetrics = { ...this.#summary(outcomes, rewards), epochs: 0, ms: { sample: t1 - t0, score: t2 - t1, update: 0, eval: 0, total: 0 } };
    if (!rewards.every(Number.isFinite)) {
      m.skipped = `non-finite reward in ${rewards.filter((r) => !Number.isFinite(r)).length} of ${N} edits`;
    } else if (c.algo === 'ppo') {
      Object.assign(m, await this.#ppoUpdate(ctx, actions, logpOld, rewards));
    } else {
      Object.assign(m, this.#restUpdate(ctx, actions, rewards));
    }
    for (const t of [actions, logpOld, ctx]) t.release();
    m.ms.update = performance.now() - t2;
    return m;
  }

  /** The passages' rows of the training features. */
  #contexts(ps: readonly number[]): F32 {
    const idx = this.gpu.tensor(Uint32Array.from(ps), [ps.length]);
    const ctx = gatherRows(this.gpu, this.#trainFeatures, idx);
    idx.release();
    return ctx;
  }

  /** The policy on the chosen passages' features ctx [B, F], and its μ copied to their samples [N, K]. */
  #sampledForward(ctx: F32): { pass: PolicyPass; mu: F32 } {
    const pass = this.generator.policy.forward(ctx);
    return { pass, mu: gatherRows(this.gpu, pass.mu, this.#spread) };
  }

  /** PPO epochs over the whole batch; stops early once the approximate KL passes 1.5·targetKl. */
  async #ppoUpdate(ctx: F32, actions: F32, logpOld: F32, rewards: number[]) {
    const gpu = this.gpu;
    const c = this.config;
    const policy = this.generator.policy;
    const raw = gpu.tensor(Float32Array.from(rewards));
    const advantages = normalizeAdvantages(gpu, raw, c.normalize === 'group' ? c.group : rewards.length);
    raw.release();
    const cfg = { clip: c.clip, entropyCoef: c.entropyCoef };
    let stats = [0, 0, 0, 0, 0];
    let epochs = 0;
    for (let e = 0; e < c.epochs; e++) {
      const { pass, mu } = this.#sampledForward(ctx);
      const batch = { mu, logStd: policy.params.get('log_std')!, actions, logpOld, advantages };
      const fwd = ppoLoss(gpu, batch, cfg);
      stats = Array.from((await gpu.read(fwd.stats)) as Float32Array);
      const go = stats[PpoStat.approxKl]! <= 1.5 * c.targetKl;
      if (go) {
        const { dMu, dLogStd } = ppoLossBackward(gpu, batch, fwd.ratio, cfg);
        const dMuPassages = matmul(gpu, this.#groupSum, dMu) as F32;
        this.#zeroGrads();
        pass.backward(dMuPassages, this.generator.grads);
        axpy(gpu, 1, dLogStd, this.generator.grads.get('log_std')!);
        for (const t of [dMu, dMuPassages, dLogStd]) t.release();
        this.#applyGrads();
        epochs++;
      }
      for (const t of [fwd.logp, fwd.ratio, fwd.stats, mu]) t.release();
      pass.release();
      if (!go) break;
    }
    advantages.release();
    return { clipFraction: stats[PpoStat.clipFraction]!, approxKl: stats[PpoStat.approxKl]!, entropy: stats[PpoStat.entropy]!, epochs };
  }

  /**
   * ReST-EM: keep the edits that beat the base (reward > 0) and their group's mean, and regress the
   * mean onto them. Beating the base alone stalls once most samples do: the mean of everything kept
   * is then about the current mean.
   */
  #restUpdate(ctx: F32, actions: F32, rewards: number[]) {
    const gpu = this.gpu;
    const N = rewards.length;
    const G = this.config.group;
    const groupMean = (i: number) => avg(rewards.slice(i - (i % G), i - (i % G) + G));
    const kept = rewards.map((r, i) => r > 0 && r >= groupMean(i));
    const count = kept.filter(Boolean).length;
    if (count === 0) return { epochs: 0, kept: 0 };
    // d/dμ_b of Σᵢ wᵢ·½‖μ_⌊i/G⌋ − aᵢ‖² with wᵢ = 1/count for kept edits: Σ over b's samples of
    // wᵢ·(μ_b − aᵢ), as a [B, N] matmul.
    const w = new Float32Array(this.config.batch * N);
    kept.forEach((k, i) => (w[Math.floor(i / G) * N + i] = k ? 1 / count : 0));
    const weights = gpu.tensor(w, [this.config.batch, N]);
    for (let e = 0; e < this.config.epochs; e++) {
      const { pass, mu } = this.#sampledForward(ctx);
      const diff = add(gpu, mu, actions, -1);
      const dMu = matmul(gpu, weights, diff) as F32;
      this.#zeroGrads();
      pass.backward(dMu, this.generator.grads);
      for (const t of [mu, diff, dMu]) t.release();
      pass.release();
      this.#applyGrads();
    }
    weights.release();
    return { epochs: this.config.epochs, kept: count };
  }

  #zeroGrads(): void {
    for (const g of this.generator.grads.values()) this.gpu.clear(g);
  }

  /** Clips the norm of the gradients of what is trained (log σ only with learnStd) and takes one AdamW step. */
  #applyGrads(): void {
    const gpu = this.gpu;
    const c = this.config;
    const g = this.generator;
    const trained = [...g.policy.params.keys()].filter((name) => name !== 'log_std' || c.learnStd);
    this.adamStep++;
    clipGradNorm(gpu, trained.map((n) => g.grads.get(n)!), c.gradClip).release();
    for (const name of trained) adamw(gpu, g.policy.params.get(name)!, g.grads.get(name)!, g.m.get(name)!, g.v.get(name)!, this.adamStep, { lr: c.lr, weightDecay: 0 });
  }

  /**
   * The generator's mean edit of every validation passage: reward and NLL drops, forgetting under the
   * first passages' edits; keeps a snapshot when the reward is the best so far.
   */
  async evaluateValidation(): Promise<{ validationReward: number; validationImprovement: number; validationMeasured: number; forgetting?: number }> {
    const K = this.generator.actionDim;
    const v = this.validation;
    const mu = await this.generator.meanCoefficients(this.#validationFeatures);
    const jobs = [...Array(v.size).keys()].map((p) => ({ p, coef: mu.subarray(p * K, (p + 1) * K) }));
    if (!mu.every(Number.isFinite)) return { validationReward: NaN, validationImprovement: NaN, validationMeasured: NaN };
    const outcomes = await v.score(jobs);
    const reward = avg(outcomes.map(this.#reward));
    const out = {
      validationReward: reward,
      validationImprovement: avg(outcomes.map((o) => o.improvement)),
      validationMeasured: avg(outcomes.map((o) => o.measured).filter((x) => !Number.isNaN(x))),
      ...(this.#forgetting ? { forgetting: avg(await this.#forgetting(jobs.slice(0, 4))) } : {}),
    };
    if (Number.isFinite(reward) && (!this.best || reward > this.best.reward)) this.best = { iteration: this.iteration, reward, arrays: await this.generator.policy.toArrays() };
    return out;
  }

  release(): void {
    for (const t of [this.#trainFeatures, this.#validationFeatures, this.#spread, this.#groupSum]) t.release();
    this.generator.release();
    this.#release?.();
  }
}
