// Context features of a passage, from the frozen base model, over the WHOLE passage: its text is cut
// into context-sized windows (one batch, each token predicted once) so a fact past the first window
// still shapes them. Computed once per passage: the base never changes, so neither do they.
//  - pooled: the mean over the passage's tokens of one layer's hidden states (what it is about);
//  - directions: per masked tensor, candidate edit directions from the passage's LM-loss gradient G
//    (what the model would have to change to know it; MEND conditions its editor on the same):
//    grad = −G/‖G‖ and sign = −sign(G)/‖sign(G)‖, the direction of Adam's first step; with a
//    lookahead, the same from the gradient after a probe step (DirectionSpec).
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel, ParamMap, ModelPass } from '../model/lm.ts';
import type { Mask } from '../model/mask.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';
import { applyEdits, editBackward } from '../ops/edit.ts';
import { matmul } from '../ops/matmul.ts';
import { passageBatch } from '../tasks/corpus.ts';
import type { DirectionKind } from './config.ts';

export interface PassageFeatures {
  /** [C] on the host: the generator's input. */
  pooled: Float32Array;
  /** Per mask entry, [rows, entry size] unit directions on the GPU (directionRows); with a mask only. Release when done. */
  directions: F32[];
  /** Per mask entry, the rows × rows Gram matrix of its directions (row-major): ‖Σ aᵣdᵣ‖² = aᵀ·Gram·a. */
  gram: Float64Array[];
  /** Per mask entry, each row's norm before normalising (‖G_k‖, ‖sign G_k‖, …): joint directions over several tensors need them. */
  norms: Float64Array[];
  release(): void;
}

/** The unit direction of one kind from a gradient g (descent: against g), and its norm before normalising. */
export function direction(kind: DirectionKind, g: Float32Array): { d: Float32Array; norm: number } {
  const d = kind === 'grad' ? g.map((v) => -v) : g.map((v) => -Math.sign(v));
  let n = 0;
  for (const v of d) n += v * v;
  const norm = Math.sqrt(n);
  const s = norm > 0 ? 1 / norm : 0;
  return { d: d.map((v) => v * s), norm };
}

/** Zero mean, unit variance: the residual stream's scale varies by layer and model; the generator's input should not. */
function standardise(x: Float32Array): Float32Array {
  const m = x.reduce((a, b) => a + b, 0) / x.length;
  const sd = Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / x.length) || 1;
  return x.map((v) => (v - m) / sd);
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Which candidate directions a passage gets per masked tensor: one row per kind from the gradient at
 * the base weights and, with a lookahead size, one more per kind from the gradient after a probe step
 * of that size along the whole mask's sign direction (a second gradient that sees how the loss
 * bends, at the cost of one more forward and backward).
 */
export interface DirectionSpec {
  kinds: readonly DirectionKind[];
  lookahead: number;
}

export const directionRows = (s: DirectionSpec): number => s.kinds.length * (s.lookahead > 0 ? 2 : 1);

/** Per masked tensor, its gradient in `grads` gathered at the mask block, packed ([size] each, fresh). */
export function gatherAtMask(model: LanguageModel, grads: ParamMap, mask: Mask): F32[] {
  const gpu = model.gpu;
  // The backward of a dense edit gathers dW at the mask; `layout` only sizes that edit's action, so
  // it is the entry's own size (one of the largest entry's size failed for masks of unequal tensors).
  const gathered = mask.entries.map((e) => {
    const layout = gpu.empty([e.size]);
    const h = editBackward(gpu, grads.get(e.name)!, { kind: 'dense', mask: [e.block], delta: layout, offset: 0, alpha: 1 }, gpu.zeros([e.size]));
    layout.release();
    return h;
  });
  return gathered;
}

/** Backward of `pass`, the gradient gathered at each masked tensor, read to the host. */
async function maskGradients(model: LanguageModel, pass: ModelPass, mask: Mask): Promise<Float32Array[]> {
  const gpu = model.gpu;
  // Only the masked tensors' gradients: the backward stops below the lowest of them.
  const grads = new Map(mask.entries.map((e) => [e.name, gpu.zeros(e.shape)]));
  pass.backward(grads);
  const gathered = gatherAtMask(model, grads, mask);
  const read = (await gpu.readMany(gathered)) as Float32Array[];
  for (const t of [...gathered, ...grads.values()]) t.release();
  return read;
}

/** The weights after a step of `size` along the whole mask's unit sign direction −sign(G)/‖sign G‖. */
function probeWeights(model: LanguageModel, mask: Mask, grads: readonly Float32Array[], size: number): Map<string, F32> {
  const gpu = model.gpu;
  const signs = grads.map((g) => g.map((v) => -Math.sign(v)));
  const nnz = signs.reduce((n, s) => n + s.reduce((c, v) => c + v * v, 0), 0);
  const alpha = nnz > 0 ? size / Math.sqrt(nnz) : 0;
  return new Map(
    mask.entries.map((e, k) => {
      const delta = gpu.tensor(signs[k]!, [e.size]);
      const w = applyEdits(gpu, model.params.get(e.name)!, [{ kind: 'dense', mask: [e.block], delta, offset: 0, alpha }]);
      delta.release();
      return [e.name, w] as const;
    }),
  );
}

export async function passageFeatures(model: LanguageModel, tok: Tokenizer, text: string, layer: number, mask?: Mask, spec: DirectionSpec = { kinds: ['grad'], lookahead: 0 }): Promise<PassageFeatures> {
  const gpu = model.gpu;
  const { nLayer, nEmbd: C, nCtx } = model.config;
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayer) throw new RangeError(`feature layer ${layer} is not a layer of this model (0..${nLayer - 1})`);
  const b = passageBatch(tok, text, nCtx);
  const tokens = gpu.tensor(b.tokens, [b.B, b.T]);
  const targets = gpu.tensor(b.targets, [b.B, b.T]);
  const pass = model.forward(tokens, targets);
  // Mean over real positions only: the last window's padding has no target.
  const real = b.targets.reduce((n, t) => n + (t !== IGNORE_INDEX ? 1 : 0), 0);
  const weights = gpu.tensor(Float32Array.from(b.targets, (t) => (t !== IGNORE_INDEX ? 1 / real : 0)), [1, b.B * b.T]);
  const pooledT = matmul(gpu, weights, pass.hidden[layer]!.reshape([b.B * b.T, C]));
  const pooled = standardise((await gpu.read(pooledT)) as Float32Array);
  pooledT.release();
  weights.release();
  // Per point (the base, then the probe), the gradient at each masked tensor.
  const points: Float32Array[][] = [];
  if (mask) {
    points.push(await maskGradients(model, pass, mask));
    if (spec.lookahead > 0) {
      const probe = probeWeights(model, mask, points[0]!, spec.lookahead);
      const ahead = model.forward(tokens, targets, probe);
      points.push(await maskGradients(model, ahead, mask));
      ahead.release();
      for (const t of probe.values()) t.release();
    }
  }
  for (const t of [tokens, targets]) t.release();
  pass.release();
  const R = directionRows(spec);
  const gram: Float64Array[] = [];
  const norms: Float64Array[] = [];
  const directions = (mask?.entries ?? []).map((e, k) => {
    const made = points.flatMap((g) => spec.kinds.map((kind) => direction(kind, g[k]!)));
    norms.push(Float64Array.from(made, (m) => m.norm));
    const ds = made.map((m) => m.d);
    const rows = new Float32Array(R * e.size);
    ds.forEach((d, r) => rows.set(d, r * e.size));
    const G = new Float64Array(R * R);
    for (let r = 0; r < R; r++) for (let q = 0; q < R; q++) G[r * R + q] = dot(ds[r]!, ds[q]!);
    gram.push(G);
    return gpu.tensor(rows, [R, e.size], 'f32', `${e.name}.directions`);
  });
  return { pooled, directions, gram, norms, release: () => directions.forEach((t) => t.release()) };
}
