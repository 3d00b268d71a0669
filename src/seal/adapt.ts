// Inference-time adaptation: a new passage's features (one forward and backward of the frozen base
// over the passage), coefficients from a rule, and the edit written to scratch copies of the masked
// tensors. The rules: the trained generator's mean (SEAL, no sampling, no RL), the untrained
// generator, or a fixed step along the whole mask's gradient (or sign) direction — the baselines a
// learned edit must beat. The base stays untouched; writeEdit saves an edit alone, as deltas.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32 } from '../gpu/tensor.ts';
import { withSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel } from '../model/lm.ts';
import { add } from '../ops/elementwise.ts';
import { convert } from '../ops/convert.ts';
import { resolveConfig, type DirectionKind, type SealConfig } from './config.ts';
import { directionRows, passageFeatures, type DirectionSpec, type PassageFeatures } from './features.ts';
import { Generator } from './generator.ts';
import { EditWriter, editSpace } from './task.ts';
import { answerNll, exactMatch, greedyAnswers, mean } from '../tasks/qa.ts';
import type { Passage } from '../tasks/squad.ts';
import { UserError } from '../util/errors.ts';
import { readVersion } from '../util/format.ts';

export interface Adaptation {
  /** The edited tensors by name: pass as `overrides` to forward/generate. Valid until the next adapt. */
  overrides: ReadonlyMap<string, F32>;
  /** ‖θ' − θ‖ over the masked tensors. */
  editNorm: number;
  ms: number;
}

/** Coefficients (one per masked tensor × direction kind) for a passage's features. */
export type CoefficientRule = (f: PassageFeatures) => Promise<ArrayLike<number>>;

/**
 * The coefficients of a step of `size` along the whole mask's unit `kind` direction (grad: −G/‖G‖
 * over every masked tensor together), for features with the directions `spec` gives.
 */
export function fixedStepRule(spec: DirectionSpec, kind: DirectionKind, size: number): (f: PassageFeatures) => Float64Array {
  const r = spec.kinds.indexOf(kind);
  if (r < 0) throw new UserError(`fixed ${kind} step: the config's directions (${spec.kinds.join(', ')}) do not include '${kind}'`);
  if (!Number.isFinite(size)) throw new UserError(`fixed ${kind} step: size must be finite, got ${size}`);
  const R = directionRows(spec);
  return (f) => {
    const total = Math.sqrt(f.norms.reduce((s, n) => s + n[r]! ** 2, 0));
    const coef = new Float64Array(f.norms.length * R);
    f.norms.forEach((n, k) => (coef[k * R + r] = total > 0 ? (size * n[r]!) / total : 0));
    return coef;
  };
}

export class Adapter {
  readonly model: LanguageModel;
  readonly config: SealConfig;
  readonly writer: EditWriter;
  readonly #tok: Tokenizer;
  readonly #layer: number;
  readonly #spec: DirectionSpec;
  readonly #rule: CoefficientRule;
  readonly #generator: Generator | undefined;

  constructor(model: LanguageModel, tok: Tokenizer, config: SealConfig, rule: CoefficientRule, generator?: Generator) {
    const { mask, layer, spec } = editSpace(model, config);
    this.model = model;
    this.config = config;
    this.writer = new EditWriter(model, mask, spec);
    this.#spec = spec;
    this.#tok = tok;
    this.#layer = layer;
    this.#rule = rule;
    this.#generator = generator;
  }

  /** The trained generator a `seal train` run wrote (policy.safetensors, with its config inside). */
  static async load(gpu: Gpu, model: LanguageModel, tok: Tokenizer, path: string): Promise<Adapter> {
    const { arrays, metadata } = await Generator.read(path);
    if (!metadata.seal) throw new UserError(`${path}: has no SEAL config (not written by seal train)`);
    const config = resolveConfig(JSON.parse(metadata.seal) as Record<string, unknown>);
    return Adapter.withGenerator(model, tok, config, arrays);
  }

  /** The generator's mean coefficients; a fresh (untrained) one from config.seed without `arrays`. */
  static withGenerator(model: LanguageModel, tok: Tokenizer, config: SealConfig, arrays?: Map<string, Float32Array>): Adapter {
    const { mask, spec } = editSpace(model, config);
    const actionDim = mask.entries.length * directionRows(spec);
    const generator = Generator.create(model.gpu, Generator.policyConfig(config, model.config.nEmbd, actionDim), config.seed, arrays);
    const want = generator.policy.config;
    if (want.actionDim !== actionDim || want.inputDim !== model.config.nEmbd) {
      generator.release();
      throw new UserError(`this generator makes ${want.actionDim} coefficients from ${want.inputDim} features; the model and mask need ${actionDim} from ${model.config.nEmbd}: wrong model for this generator`);
    }
    const meanOf = async (f: PassageFeatures) => {
      const ctx = model.gpu.tensor(f.pooled, [1, f.pooled.length]);
      const mu = await generator.meanCoefficients(ctx);
      ctx.release();
      return mu;
    };
    return new Adapter(model, tok, config, meanOf, generator);
  }

  /** A fixed step (fixedStepRule) as an adapter. */
  static fixedStep(model: LanguageModel, tok: Tokenizer, config: SealConfig, kind: DirectionKind, size: number): Adapter {
    const rule = fixedStepRule(editSpace(model, config).spec, kind, size);
    return new Adapter(model, tok, config, async (f) => rule(f));
  }

  async adapt(passage: string): Promise<Adaptation> {
    const t0 = performance.now();
    const f = await passageFeatures(this.model, this.#tok, passage, this.#layer, this.writer.mask, this.#spec);
    try {
      const coef = await this.#rule(f);
      const overrides = this.writer.apply(f, coef);
      const editNorm = this.writer.norm(f, coef);
      // Wait for the edit itself so the time covers it.
      await this.model.gpu.sync();
      return { overrides, editNorm, ms: performance.now() - t0 };
    } finally {
      f.release();
    }
  }

  release(): void {
    this.writer.release();
    this.#generator?.release();
  }
}

/** One passage tried: the base and the edited model's answers and answer NLL, and the edit. */
export interface PassageTrial {
  title: string;
  editNorm: number;
  ms: number;
  questions: { question: string; answer?: string; base: string; edited: string; baseNll?: number; editedNll?: number; baseEm?: boolean; editedEm?: boolean }[];
  /** Mean answer NLL over the questions that have a reference answer (NaN when none has). */
  nll: { base: number; edited: number };
}

/**
 * Adapts to `p` and answers its questions before and after: what `seal adapt` and the playground
 * page show. The overrides (the edited tensors) stay valid until the adapter's next adapt.
 */
export async function tryPassage(adapter: Adapter, tok: Tokenizer, p: Passage, maxNew: number): Promise<{ trial: PassageTrial; overrides: ReadonlyMap<string, F32> }> {
  const model = adapter.model;
  const questions = p.questions.map((q) => q.question);
  const known = p.questions.flatMap((q, i) => (q.answers.length ? [{ i, item: { question: q.question, answer: q.answers[0]! } }] : []));
  const base = questions.length ? await greedyAnswers(model, tok, questions, { maxNew }) : [];
  const baseNll = await answerNll(model, tok, known.map((k) => k.item));
  const { overrides, editNorm, ms } = await adapter.adapt(p.context);
  const edited = questions.length ? await greedyAnswers(model, tok, questions, { maxNew, overrides }) : [];
  const editedNll = await answerNll(model, tok, known.map((k) => k.item), { overrides });
  const at = new Map(known.map((k, j) => [k.i, j]));
  const trial: PassageTrial = {
    title: p.title,
    editNorm,
    ms,
    questions: p.questions.map((q, i) => {
      const j = at.get(i);
      const row = { question: q.question, base: base[i]!, edited: edited[i]! };
      return j === undefined
        ? row
        : { ...row, answer: q.answers[0]!, baseNll: baseNll[j]!, editedNll: editedNll[j]!, baseEm: exactMatch(base[i]!, q.answers), editedEm: exactMatch(edited[i]!, q.answers) };
    }),
    nll: { base: mean(baseNll), edited: mean(editedNll) },
  };
  return { trial, overrides };
}

/** The edit alone: θ' − θ for each edited tensor (an Adaptation's overrides), under the tensor's own name. */
export async function editDeltas(model: LanguageModel, overrides: ReadonlyMap<string, F32>): Promise<Map<string, TensorToWrite>> {
  const gpu = model.gpu;
  const names = [...overrides.keys()];
  const deltas = names.map((n) => {
    const base = convert(gpu, model.params.get(n)!, 'f32');
    const d = add(gpu, overrides.get(n)!, base, -1);
    base.release();
    return d;
  });
  const data = await gpu.readMany(deltas);
  const result = new Map(names.map((n, i) => [n, { shape: deltas[i]!.shape, data: data[i] as Float32Array }]));
  for (const d of deltas) d.release();
  return result;
}

const EDIT_FORMAT = 'seal-webgpu/edit';
/** The edit file layout written now (metadata `version`); version 0 (none) is the same layout. */
export const EDIT_VERSION = 1;

/** Writes editDeltas as safetensors (metadata format 'seal-webgpu/edit'), atomically. */
export async function writeEdit(path: string, model: LanguageModel, overrides: ReadonlyMap<string, F32>): Promise<void> {
  await writeSafetensors(path, await editDeltas(model, overrides), { format: EDIT_FORMAT, version: String(EDIT_VERSION) });
}

/** An edit writeEdit wrote: θ′ − θ per edited tensor. Version 0 files named their format `kind`. */
export async function readEdit(path: string): Promise<Map<string, TensorToWrite>> {
  return withSafetensors(path, async (f) => {
    const format = f.metadata.format ?? f.metadata.kind;
    if (format !== EDIT_FORMAT) throw new UserError(`${path}: not a seal-webgpu edit (metadata format ${JSON.stringify(format ?? null)}, expected '${EDIT_FORMAT}')`);
    readVersion(path, 'edit', f.metadata.version, EDIT_VERSION);
    const deltas = new Map<string, TensorToWrite>();
    for (const name of f.names) deltas.set(name, { shape: f.tensors.get(name)!.shape, data: await f.get(name) });
    return deltas;
  });
}
