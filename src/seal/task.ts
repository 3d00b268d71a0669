// What an edit is scored on. The trainer sees only this interface: passages with pooled features, an
// edit given as K coefficients over the passage's candidate directions, its reward, and (for the
// meta-gradient) the derivative of the post-edit loss wrt those coefficients. QATask is SEAL's
// knowledge task on a frozen GPT-2; tests plug in small synthetic tasks.
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel, ParamMap } from '../model/lm.ts';
import { resolveMask, type Mask } from '../model/mask.ts';
import { applyEdits, combineEdits, type DenseEdit } from '../ops/edit.ts';
import { dotRows } from '../ops/reduce.ts';
import type { ForgettingProbe } from '../tasks/forgetting.ts';
import type { Passage } from '../tasks/squad.ts';
import type { SealConfig } from './config.ts';
import { directionRows, gatherAtMask, passageFeatures, type DirectionSpec, type PassageFeatures } from './features.ts';
import { QAScorer, type PassageScore } from './reward.ts';

/** xs in consecutive groups of at most n (the edits of one batched pass). */
export function inGroups<T>(xs: readonly T[], n: number): T[][] {
  return Array.from({ length: Math.ceil(xs.length / n) }, (_, k) => xs.slice(k * n, (k + 1) * n));
}

/** What a SEAL config edits on a model: the resolved mask, and the layer the pooled feature comes from. */
export function editSpace(model: LanguageModel, config: Pick<SealConfig, 'mask' | 'featureLayer' | 'directions' | 'lookahead'>): { mask: Mask; layer: number; spec: DirectionSpec } {
  const mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), config.mask);
  const layer = config.featureLayer < 0 ? model.config.nLayer + config.featureLayer : config.featureLayer;
  return { mask, layer, spec: { kinds: config.directions, lookahead: config.lookahead } };
}

/** An edit: coefficients (length K) over passage p's candidate directions. */
export interface EditJob {
  p: number;
  coef: ArrayLike<number>;
}

export interface EditOutcome {
  /** Drop of the scored answer NLL from the base (the reward before the penalty). */
  improvement: number;
  /** The same on the measured questions (NaN where a passage has none). */
  measured: number;
  /** ‖θ' − θ‖. */
  norm: number;
}

export interface MetaOutcome extends EditOutcome {
  /** d(scored answer NLL + penalty·‖Δ‖²)/d(coef). */
  grad: Float64Array;
}

/** Which training round a score belongs to: tasks that hand scoring to workers key their jobs by it. */
export interface Round {
  iteration: number;
}

export interface EditTask {
  readonly size: number;
  /** K: coefficients per edit. */
  readonly actionDim: number;
  readonly featureDim: number;
  pooled(p: number): Float32Array;
  score(jobs: readonly EditJob[], round?: Round): Promise<EditOutcome[]>;
  gradients(jobs: readonly EditJob[], penalty: number, round?: Round): Promise<MetaOutcome[]>;
  release(): void;
}

/**
 * Writes edits into scratch copies of the masked tensors: tensor k gets base + Σ_r coef[k·R + r]·
 * direction_r(k) of the passage's features, one dispatch per tensor (ops/edit.ts combineEdits). The
 * base is only read; the scratch tensors are rewritten by each edit (GPU order: work encoded after
 * apply sees that edit). applyMany writes several edits as stacked [G, ...shape] copies, the
 * per-variant weights of a batched pass (PassOptions.variants).
 */
export class EditWriter {
  readonly model: LanguageModel;
  readonly mask: Mask;
  /** Directions per masked tensor. */
  readonly rows: number;
  /** The edited tensors by name: pass as overrides. */
  readonly overrides = new Map<string, F32>();
  /** Stacked copies for applyMany, grown to the largest group asked for. */
  #stacked = new Map<string, F32>();

  constructor(model: LanguageModel, mask: Mask, spec: DirectionSpec) {
    this.model = model;
    this.mask = mask;
    this.rows = directionRows(spec);
    for (const e of mask.entries) this.overrides.set(e.name, model.gpu.empty(e.shape, 'f32', `${e.name}.edited`));
  }

  get actionDim(): number {
    return this.mask.entries.length * this.rows;
  }

  /** The most stacked copies of every masked tensor that fit one storage binding. */
  get maxCopies(): number {
    const largest = Math.max(...this.mask.entries.map((e) => this.model.params.get(e.name)!.size));
    return Math.max(1, Math.floor(this.model.gpu.bindingLimit / (4 * largest)));
  }

  apply(f: PassageFeatures, coef: ArrayLike<number>): ReadonlyMap<string, F32> {
    this.#write([f], [coef], (name) => this.overrides.get(name)!.reshape([1, ...this.overrides.get(name)!.shape]));
    return this.overrides;
  }

  /**
   * Edit g (features fs[g], or fs[0] for all: the edits of one passage) into copy g of stacked
   * [G, ...shape] tensors; valid until the next applyMany.
   */
  applyMany(fs: readonly PassageFeatures[], coefs: readonly ArrayLike<number>[]): ReadonlyMap<string, F32> {
    const G = coefs.length;
    if (G > this.maxCopies) throw new RangeError(`edit: ${G} stacked copies do not fit one storage binding (at most ${this.maxCopies})`);
    const gpu = this.model.gpu;
    const out = new Map<string, F32>();
    for (const e of this.mask.entries) {
      let t = this.#stacked.get(e.name);
      if (!t || t.shape[0]! < G) {
        t?.release();
        t = gpu.empty([G, ...e.shape], 'f32', `${e.name}.edited×${G}`);
        this.#stacked.set(e.name, t);
      }
      out.set(e.name, t.view(0, [G, ...e.shape]));
    }
    this.#write(fs, coefs, (name) => out.get(name)!);
    return out;
  }

  /** G edits as the overrides of a pass of G variants: a lone one as plain copies (apply), several stacked (applyMany). */
  edits(fs: readonly PassageFeatures[], coefs: readonly ArrayLike<number>[]): ReadonlyMap<string, F32> {
    return coefs.length === 1 ? this.apply(fs[0]!, coefs[0]!) : this.applyMany(fs, coefs);
  }

  /** One combine per tensor when every edit is of the same passage, else one per edit and tensor. */
  #write(fs: readonly PassageFeatures[], coefs: readonly ArrayLike<number>[], into: (name: string) => F32): void {
    const R = this.rows;
    for (const coef of coefs) {
      if (coef.length !== this.actionDim) throw new RangeError(`edit: ${coef.length} coefficients for ${this.actionDim} directions`);
      for (const c of Array.from(coef)) if (!Number.isFinite(c)) throw new RangeError(`edit: non-finite coefficient ${c}`);
    }
    const gpu = this.model.gpu;
    const groups = fs.length === 1 ? [{ f: fs[0]!, first: 0, coefs }] : coefs.map((c, g) => ({ f: fs[g]!, first: g, coefs: [c] }));
    this.mask.entries.forEach((e, k) => {
      const base = this.model.params.get(e.name)!;
      for (const grp of groups) {
        if (4 * base.size > gpu.bindingLimit) {
          // Over one binding (a large embedding): the R directions as R edits, bound in pieces.
          const edits: DenseEdit[] = Array.from({ length: R }, (_, r) => ({ kind: 'dense', mask: [e.block], delta: grp.f.directions[k]!, offset: r * e.size, alpha: grp.coefs[0]![k * R + r]! }));
          applyEdits(gpu, base, edits, into(e.name).reshape(e.shape));
          continue;
        }
        const c = gpu.tensor(Float32Array.from(grp.coefs.flatMap((a) => Array.from({ length: R }, (_, r) => a[k * R + r]!))), [grp.coefs.length, R]);
        combineEdits(gpu, base, e.block, grp.f.directions[k]!, c, into(e.name), grp.first);
        c.release();
      }
    });
  }

  /** ‖Δ‖ from the directions' Gram matrices (no GPU work). */
  norm(f: PassageFeatures, coef: ArrayLike<number>): number {
    const R = this.rows;
    let sq = 0;
    f.gram.forEach((G, k) => {
      for (let r = 0; r < R; r++) for (let q = 0; q < R; q++) sq += coef[k * R + r]! * G[r * R + q]! * coef[k * R + q]!;
    });
    return Math.sqrt(Math.max(0, sq));
  }

  release(): void {
    for (const t of [...this.overrides.values(), ...this.#stacked.values()]) t.release();
  }
}

/**
 * SEAL's knowledge task: passage p's edit adds Σ coef[k·R + r]·direction_r(tensor k) to each masked
 * tensor k of scratch copies (the base is only read), and the edited model answers the passage's
 * questions with no passage in context.
 */
export class QATask implements EditTask {
  readonly model: LanguageModel;
  readonly mask: Mask;
  readonly features: PassageFeatures[];
  readonly base: PassageScore[];
  readonly writer: EditWriter;
  readonly #scorer: QAScorer;
  #grads: ParamMap | null = null;

  private constructor(model: LanguageModel, mask: Mask, spec: DirectionSpec, features: PassageFeatures[], scorer: QAScorer, base: PassageScore[]) {
    this.model = model;
    this.mask = mask;
    this.features = features;
    this.#scorer = scorer;
    this.base = base;
    this.writer = new EditWriter(model, mask, spec);
  }

  /** The edited tensors, rewritten by each edit: pass as overrides. */
  get overrides(): ReadonlyMap<string, F32> {
    return this.writer.overrides;
  }

  static async create(
    model: LanguageModel,
    tok: Tokenizer,
    passages: readonly Passage[],
    mask: Mask,
    spec: DirectionSpec,
    layer: number,
    onProgress?: (done: number, total: number) => void,
  ): Promise<QATask> {
    const features: PassageFeatures[] = [];
    for (const [i, p] of passages.entries()) {
      features.push(await passageFeatures(model, tok, p.context, layer, mask, spec));
      onProgress?.(i + 1, passages.length);
    }
    const scorer = new QAScorer(model, tok, passages, mask.entries.map((e) => e.name));
    const base = await scorer.score(model.gpu, passages.map((_, p) => ({ p })));
    return new QATask(model, mask, spec, features, scorer, base);
  }

  get size(): number {
    return this.features.length;
  }

  get actionDim(): number {
    return this.writer.actionDim;
  }

  get featureDim(): number {
    return this.model.config.nEmbd;
  }

  pooled(p: number): Float32Array {
    return this.features[p]!.pooled;
  }

  apply(job: EditJob): ReadonlyMap<string, F32> {
    return this.writer.apply(this.features[job.p]!, job.coef);
  }

  #outcome(job: EditJob, s: PassageScore): EditOutcome {
    const b = this.base[job.p]!;
    return { improvement: b.scored - s.scored, measured: b.measured - s.measured, norm: this.writer.norm(this.features[job.p]!, job.coef) };
  }

  /**
   * The edits of one passage are scored together, as one pass of G variants (stacked per-edit
   * weights; as many as the bindings hold), a lone edit as a plain pass.
   */
  async score(jobs: readonly EditJob[]): Promise<EditOutcome[]> {
    const byPassage = new Map<number, number[]>();
    jobs.forEach((j, i) => byPassage.set(j.p, [...(byPassage.get(j.p) ?? []), i]));
    const groups = [...byPassage].flatMap(([p, idx]) => {
      const most = Math.max(1, Math.min(this.writer.maxCopies, this.#scorer.fit(p)));
      return inGroups(idx, most);
    });
    const scores = await this.#scorer.score(
      this.model.gpu,
      groups.map((idx) => {
        const p = jobs[idx[0]!]!.p;
        const coefs = idx.map((i) => jobs[i]!.coef);
        return { p, variants: idx.length, overrides: () => this.writer.edits([this.features[p]!], coefs) };
      }),
    );
    const out: EditOutcome[] = [];
    groups.flat().forEach((i, k) => (out[i] = this.#outcome(jobs[i]!, scores[k]!)));
    return out;
  }

  /**
   * Forgetting under each edit (ForgettingProbe.measure), read back together; the edits run as
   * variants of one pass per chunk of general text, as many at a time as the bindings hold.
   */
  async forgetting(probe: ForgettingProbe, jobs: readonly EditJob[]): Promise<number[]> {
    const most = Math.min(this.writer.maxCopies, probe.maxVariants);
    return probe.measureMany(inGroups(jobs, most).map((g) => ({ variants: g.length, overrides: () => this.writer.edits(g.map((j) => this.features[j.p]!), g.map((j) => j.coef)) })));
  }

  async gradients(jobs: readonly EditJob[], penalty: number): Promise<MetaOutcome[]> {
    const gpu = this.model.gpu;
    // Only the masked tensors' gradients: the backward stops below the lowest of them.
    const grads = (this.#grads ??= new Map(this.mask.entries.map((e) => [e.name, gpu.zeros(e.shape, 'f32', `${e.name}.grad`)])));
    const R = this.writer.rows;
    const whole = this.mask.entries.every((e) => e.size === this.model.params.get(e.name)!.size);
    const passes: { losses: F32; release(): void }[] = [];
    const dCoef: F32[] = [];
    try {
      for (const job of jobs) {
        this.apply(job);
        for (const g of grads.values()) gpu.clear(g);
        passes.push(this.#scorer.encode(job.p, this.overrides, grads));
        // d/d(coef_kr) = ⟨dW'_k at the mask, direction_kr⟩: R dot products, with dW' gathered at
        // the mask first unless every block is its whole tensor (then dW' is already packed).
        const packed = whole ? this.mask.entries.map((e) => grads.get(e.name)!.reshape([e.size])) : gatherAtMask(this.model, grads, this.mask);
        packed.forEach((h, k) => dCoef.push(dotRows(gpu, this.features[job.p]!.directions[k]!, h)));
        if (!whole) packed.forEach((h) => h.release());
      }
      const read = await gpu.readMany([...passes.map((x) => x.losses), ...dCoef]);
      const E = this.mask.entries.length;
      return jobs.map((job, i) => {
        const grad = new Float64Array(this.actionDim);
        for (let k = 0; k < E; k++) {
          const d = read[jobs.length + i * E + k] as Float32Array;
          const G = this.features[job.p]!.gram[k]!;
          // d(λ·aᵀ·Gram·a)/da = 2λ·Gram·a.
          for (let r = 0; r < R; r++) {
            let pen = 0;
            for (let q = 0; q < R; q++) pen += G[r * R + q]! * job.coef[k * R + q]!;
            grad[k * R + r] = d[r]! + 2 * penalty * pen;
          }
        }
        return { ...this.#outcome(job, this.#scorer.summarize(job.p, read[i] as Float32Array)), grad };
      });
    } finally {
      for (const x of passes) x.release();
      for (const t of dCoef) t.release();
    }
  }

  release(): void {
    for (const f of this.features) f.release();
    this.writer.release();
    for (const t of this.#grads?.values() ?? []) t.release();
    this.#scorer.release();
  }
}
