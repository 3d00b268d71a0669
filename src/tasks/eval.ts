// Knowledge-incorporation evaluation (docs/ARCHITECTURE.md): each adaptation method turns a passage into an
// adapted model (base + overrides, or the base with the passage in context), which then answers the
// passage's questions without the passage. Per method and passage: answer NLL, exact match, time to
// adapt, edit norm and forgetting; methods with randomness run once per seed.
//
// The base model's parameters are only ever read: edits live in scratch copies (overrides).
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel } from '../model/lm.ts';
import type { MaskEntry } from '../model/mask.ts';
import { applyEdits, type DenseEdit, type MaskBlock } from '../ops/edit.ts';
import { globalNorm } from '../ops/optimizer.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import type { ForgettingProbe } from './forgetting.ts';
import { answerNll, exactMatch, greedyAnswers, mean } from './qa.ts';
import { passageName, type Passage } from './squad.ts';

/** A passage's adapted model, alive until release(). */
export interface Adapted {
  /** Edited tensors used instead of the base's; absent: the base weights. */
  overrides?: ReadonlyMap<string, F32>;
  /** Text placed before each question (the in-context reference). */
  context?: string;
  /** ‖θ' − θ‖ over the edited parameters (0 without an edit). */
  editNorm: number;
  release(): void;
}

export interface Method {
  readonly name: string;
  /** Whether adapt's result depends on the seed: such methods are evaluated once per seed. */
  readonly seeded: boolean;
  adapt(passage: Passage, seed: number): Promise<Adapted>;
}

const unchanged = (context?: string): Adapted => ({ ...(context !== undefined ? { context } : {}), editNorm: 0, release() {} });

/** The base model, no edit. */
export const baseMethod: Method = { name: 'base', seeded: false, adapt: async () => unchanged() };

/** The passage in context before each question: a reference point, not an edit. */
export const inContextMethod: Method = { name: 'in-context', seeded: false, adapt: async (p) => unchanged(`${p.context}\n`) };

/**
 * A method from an inference-time adapter (SEAL's Adapter in src/seal/adapt.ts): it edits from the
 * passage text alone. Its overrides belong to the adapter (reused by its next adapt), so release
 * here frees nothing.
 */
export function adapterMethod(name: string, adapter: { adapt(text: string): Promise<{ overrides: ReadonlyMap<string, F32>; editNorm: number }> }): Method {
  return {
    name,
    seeded: false,
    async adapt(passage) {
      const { overrides, editNorm } = await adapter.adapt(passage.context);
      return { overrides, editNorm, release() {} };
    },
  };
}

// ── masked deltas ──────────────────────────────────────────────────────────────────────────────

/** One delta tensor per mask entry (packed like the entry's block), added to copies of the base tensors. */
export class MaskedDelta {
  readonly entries: readonly MaskEntry[];
  readonly deltas: F32[];
  // One mask array per entry, kept so applyEdits checks each mask once (it caches by identity).
  readonly #masks: (readonly MaskBlock[])[];
  readonly #model: LanguageModel;

  constructor(model: LanguageModel, entries: readonly MaskEntry[], deltas?: F32[]) {
    this.#model = model;
    this.entries = entries;
    this.deltas = deltas ?? entries.map((e) => model.gpu.zeros([e.size], 'f32', `${e.name}.delta`));
    this.#masks = entries.map((e) => [e.block]);
  }

  edit(i: number): DenseEdit {
    return { kind: 'dense', mask: this.#masks[i]!, delta: this.deltas[i]!, alpha: 1 };
  }

  /** base + delta for every entry, into `into`'s tensors when given (scratch copies reused across steps). */
  apply(into?: Map<string, F32>): Map<string, F32> {
    const out = into ?? new Map<string, F32>();
    this.entries.forEach((e, i) => {
      out.set(e.name, applyEdits(this.#model.gpu, this.#model.params.get(e.name)!, [this.edit(i)], out.get(e.name)));
    });
    return out;
  }

  /** ‖delta‖, reduced on the GPU and read back (which also waits for the work before it). */
  async norm(): Promise<number> {
    const n = globalNorm(this.#model.gpu, this.deltas);
    const v = await this.#model.gpu.scalar(n);
    n.release();
    return v;
  }

  release(): void {
    for (const d of this.deltas) d.release();
  }
}

/** A 32-bit seed from a run seed and a passage id (FNV-1a), so every passage draws its own direction. */
export function passageSeed(seed: number, passageId: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < passageId.length; i++) h = Math.imul(h ^ passageId.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The edit norm for a passage: fixed, or given per passage (e.g. the SEAL edit's, via matchNorm). */
export type NormFor = number | ((passage: Passage) => number);

/** A Gaussian direction on the mask scaled to the given norm, drawn from (seed, passage id). */
export function randomEditMethod(model: LanguageModel, entries: readonly MaskEntry[], norm: NormFor): Method {
  if (entries.length === 0) throw new RangeError('random edit: the mask has no tensors');
  return {
    name: 'random',
    seeded: true,
    async adapt(passage, seed) {
      const target = typeof norm === 'number' ? norm : norm(passage);
      if (!(target >= 0) || !Number.isFinite(target)) throw new UserError(`random edit: norm for passage ${passageName(passage)} must be a finite number ≥ 0, got ${target}`);
      const rng = new Rng(passageSeed(seed, passage.id));
      const zs = entries.map((e) => rng.normalArray(e.size));
      let sq = 0;
      for (const z of zs) for (const x of z) sq += x * x;
      const s = sq > 0 ? target / Math.sqrt(sq) : 0;
      const delta = new MaskedDelta(
        model,
        entries,
        zs.map((z, i) => model.gpu.tensor(z.map((x) => x * s), [z.length], 'f32', `${entries[i]!.name}.random`)),
      );
      const overrides = delta.apply();
      const editNorm = await delta.norm();
      delta.release();
      return { overrides, editNorm, release: () => overrides.forEach((t) => t.release()) };
    },
  };
}

/**
 * Wraps a method to remember its edit norm per passage, so another method (the random edit) can use
 * the same norm. The wrapped method must be evaluated before any method that asks (evaluate runs
 * methods in the order given, per passage).
 */
export function matchNorm(method: Method): { method: Method; norm: (passage: Passage) => number } {
  const norms = new Map<string, number[]>();
  return {
    method: {
      name: method.name,
      seeded: method.seeded,
      async adapt(passage, seed) {
        const a = await method.adapt(passage, seed);
        norms.set(passage.id, [...(norms.get(passage.id) ?? []), a.editNorm]);
        return a;
      },
    },
    norm(passage) {
      const ns = norms.get(passage.id);
      if (!ns) throw new Error(`no ${method.name} edit norm recorded for passage ${passage.id} yet: list ${method.name} before the method that matches its norm`);
      return mean(ns);
    },
  };
}

/** Methods picked by name from the ones available, in the order asked; unknown names are an error. */
export function pickMethods(names: readonly string[], available: ReadonlyMap<string, () => Method>): Method[] {
  if (names.length === 0) throw new UserError('no methods to evaluate');
  const unknown = names.filter((n) => !available.has(n));
  if (unknown.length) throw new UserError(`unknown method${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')} (known: ${[...available.keys()].join(', ')})`);
  return names.map((n) => available.get(n)!());
}

// ── evaluation ─────────────────────────────────────────────────────────────────────────────────

export interface EvalOptions {
  /** Seeds for methods with randomness (deterministic methods use the first). Default [1]. */
  seeds?: readonly number[];
  /** Measures forgetting on general text. */
  forgetting: ForgettingProbe;
  /** Longest greedy answer in tokens. */
  maxNew?: number;
  /** A name for the passages (e.g. the split), recorded in the result. */
  split?: string;
  onProgress?: (done: number, total: number, what: string) => void;
}

/** One method on one passage with one seed. */
export interface RunRecord {
  method: string;
  passage: string;
  seed: number;
  /** Mean answer NLL over the passage's questions, and per question. */
  nll: number;
  questionNll: number[];
  /** Fraction of questions answered exactly (greedy, SQuAD normalisation). */
  em: number;
  predictions: string[];
  /** Wall time of adapt (until its edit norm was read back, so the GPU work is done). */
  ms: number;
  editNorm: number;
  /** General-text NLL change, edited minus base. */
  forgetting: number;
}

/** Mean and sample standard deviation (n − 1; 0 for one value). */
export interface Stat {
  mean: number;
  std: number;
}

export interface MethodSummary {
  name: string;
  seeds: number[];
  /** Per seed the mean over passages, then mean ± std over seeds. */
  nll: Stat;
  /** Standard error over passages of the (seed-averaged) per-passage NLL. */
  nllSe: number;
  em: Stat;
  /** Median time to adapt one passage (the first calls also compile kernels). */
  msPerPassage: number;
  editNorm: Stat;
  forgetting: Stat;
}

export interface EvalResult {
  split: string;
  passages: number;
  questions: number;
  seeds: number[];
  generalLines: number;
  baseGeneralNll: number;
  methods: MethodSummary[];
  runs: RunRecord[];
}

export function stat(xs: readonly number[]): Stat {
  const m = mean(xs);
  if (xs.length < 2) return { mean: m, std: 0 };
  return { mean: m, std: Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1)) };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

function checkInputs(passages: readonly Passage[], methods: readonly Method[], seeds: readonly number[]): void {
  if (passages.length === 0) throw new UserError('evaluate: no passages (is the split empty?)');
  const bare = passages.find((p) => p.questions.length === 0);
  if (bare) throw new RangeError(`evaluate: passage ${passageName(bare)} has no questions to score`);
  if (methods.length === 0) throw new RangeError('evaluate: no methods');
  const names = methods.map((m) => m.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new RangeError(`evaluate: two methods are named '${twice}'`);
  if (seeds.length === 0 || !seeds.every((s) => Number.isInteger(s) && s >= 0)) throw new RangeError(`evaluate: seeds must be non-negative integers, got [${seeds}]`);
}

async function run(model: LanguageModel, tok: Tokenizer, passage: Passage, method: Method, seed: number, o: EvalOptions): Promise<RunRecord> {
  const t0 = performance.now();
  const adapted = await method.adapt(passage, seed);
  const ms = performance.now() - t0;
  try {
    const view = { ...(adapted.overrides ? { overrides: adapted.overrides } : {}), ...(adapted.context !== undefined ? { context: adapted.context } : {}) };
    const items = passage.questions.map((q) => ({ question: q.question, answer: q.answers[0]! }));
    const nll = Array.from(await answerNll(model, tok, items, view));
    const predictions = await greedyAnswers(model, tok, passage.questions.map((q) => q.question), { ...view, ...(o.maxNew ? { maxNew: o.maxNew } : {}) });
    const hits = passage.questions.map((q, i) => (exactMatch(predictions[i]!, q.answers) ? 1 : 0));
    const forgetting = await o.forgetting.measure(adapted.overrides);
    return { method: method.name, passage: passage.id, seed, nll: mean(nll), questionNll: nll, em: mean(hits), predictions, ms, editNorm: adapted.editNorm, forgetting };
  } finally {
    adapted.release();
  }
}

function summarise(method: Method, seeds: number[], runs: RunRecord[]): MethodSummary {
  const perSeed = (f: (r: RunRecord) => number) => seeds.map((s) => mean(runs.filter((r) => r.seed === s).map(f)));
  const passageIds = [...new Set(runs.map((r) => r.passage))];
  const perPassage = passageIds.map((id) => mean(runs.filter((r) => r.passage === id).map((r) => r.nll)));
  return {
    name: method.name,
    seeds,
    nll: stat(perSeed((r) => r.nll)),
    nllSe: stat(perPassage).std / Math.sqrt(perPassage.length),
    em: stat(perSeed((r) => r.em)),
    msPerPassage: median(runs.map((r) => r.ms)),
    editNorm: stat(perSeed((r) => r.editNorm)),
    forgetting: stat(perSeed((r) => r.forgetting)),
  };
}

/** Evaluates every method on every passage (passages outer, methods in the order given). */
export async function evaluate(model: LanguageModel, tok: Tokenizer, passages: readonly Passage[], methods: readonly Method[], o: EvalOptions): Promise<EvalResult> {
  const seeds = [...(o.seeds ?? [1])];
  checkInputs(passages, methods, seeds);
  const seedsOf = (m: Method) => (m.seeded ? seeds : seeds.slice(0, 1));
  const total = passages.length * methods.reduce((n, m) => n + seedsOf(m).length, 0);
  const runs: RunRecord[] = [];
  for (const passage of passages) {
    for (const method of methods) {
      for (const seed of seedsOf(method)) {
        runs.push(await run(model, tok, passage, method, seed, o));
        o.onProgress?.(runs.length, total, `${method.name} on ${passage.id}`);
      }
    }
  }
  return {
    split: o.split ?? 'passages',
    passages: passages.length,
    questions: passages.reduce((n, p) => n + p.questions.length, 0),
    seeds,
    generalLines: o.forgetting.lines.length,
    baseGeneralNll: o.forgetting.baseNll,
    methods: methods.map((m) => summarise(m, seedsOf(m), runs.filter((r) => r.method === m.name))),
    runs,
  };
}

// ── printing ───────────────────────────────────────────────────────────────────────────────────

const pm = (s: Stat, digits: number) => `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`;

/** The summary as an aligned text table, one row per method. */
export function formatTable(r: EvalResult): string {
  const head = ['method', 'answer NLL (± std seeds)', 's.e. passages', 'EM %', 'ms/passage', 'forgetting', 'edit norm', 'seeds'];
  const rows = r.methods.map((m) => [
    m.name,
    pm(m.nll, 3),
    m.nllSe.toFixed(3),
    `${(100 * m.em.mean).toFixed(1)}${m.seeds.length > 1 ? ` ± ${(100 * m.em.std).toFixed(1)}` : ''}`,
    m.msPerPassage.toFixed(0),
    m.forgetting.mean.toFixed(4),
    m.editNorm.mean.toPrecision(3),
    String(m.seeds.length),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `${r.split}: ${r.passages} passages, ${r.questions} questions; forgetting on ${r.generalLines} general-text lines (base NLL ${r.baseGeneralNll.toFixed(4)})`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}
