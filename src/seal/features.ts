// Context features of a passage, from the frozen base model, over the WHOLE passage: its text is cut
// into context-sized windows (one batch, each token predicted once) so a fact past the first window
// still shapes them. Computed once per passage: the base never changes, so neither do they.
//  - pooled: the mean over the passage's tokens of one layer's hidden states (what it is about);
//  - directions: per masked tensor, candidate edit directions from the passage's LM-loss gradient G
//    (what the model would have to change to know it; MEND conditions its editor on the same):
//    grad = −G/‖G‖ and sign = −sign(G)/‖sign(G)‖, the direction of Adam's first step.
import type { F32 } from '../gpu/tensor.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { GPT2 } from '../model/gpt2.ts';
import type { Mask } from '../model/mask.ts';
import { IGNORE_INDEX } from '../ops/crossentropy.ts';
import { editBackward } from '../ops/edit.ts';
import { matmul } from '../ops/matmul.ts';
import { passageBatch } from '../tasks/corpus.ts';
import type { DirectionKind } from './config.ts';

export interface PassageFeatures {
  /** [C] on the host: the generator's input. */
  pooled: Float32Array;
  /** Per mask entry, [kinds, entry size] unit directions on the GPU; with a mask only. Release when done. */
  directions: F32[];
  /** Per mask entry, the kinds × kinds Gram matrix of its directions (row-major): ‖Σ aᵣdᵣ‖² = aᵀ·Gram·a. */
  gram: Float64Array[];
  /** Per mask entry, each kind's norm before normalising (‖G_k‖, ‖sign G_k‖): joint directions over several tensors need them. */
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

export async function passageFeatures(model: GPT2, tok: Tokenizer, text: string, layer: number, mask?: Mask, kinds: readonly DirectionKind[] = ['grad']): Promise<PassageFeatures> {
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
  const pooled = matmul(gpu, weights, pass.hidden[layer]!.reshape([b.B * b.T, C]));
  const toRead: F32[] = [pooled];
  const grads = mask ? model.zerosLike() : null;
  if (mask && grads) {
    pass.backward(grads);
    // The backward of a dense edit gathers dW at the mask; `layout` only sizes that edit's action.
    const layout = gpu.empty([Math.max(...mask.entries.map((e) => e.size))]);
    for (const e of mask.entries) {
      const g = gpu.zeros([e.size]);
      editBackward(gpu, grads.get(e.name)!, { kind: 'dense', mask: [e.block], delta: layout, offset: 0, alpha: 1 }, g);
      toRead.push(g);
    }
    layout.release();
  }
  const read = await gpu.readMany(toRead);
  for (const t of [tokens, targets, weights, ...toRead, ...(grads?.values() ?? [])]) t.release();
  pass.release();
  const R = kinds.length;
  const gram: Float64Array[] = [];
  const norms: Float64Array[] = [];
  const directions = (mask?.entries ?? []).map((e, i) => {
    const made = kinds.map((k) => direction(k, read[i + 1] as Float32Array));
    norms.push(Float64Array.from(made, (m) => m.norm));
    const ds = made.map((m) => m.d);
    const rows = new Float32Array(R * e.size);
    ds.forEach((d, r) => rows.set(d, r * e.size));
    const G = new Float64Array(R * R);
    for (let r = 0; r < R; r++) for (let q = 0; q < R; q++) G[r * R + q] = dot(ds[r]!, ds[q]!);
    gram.push(G);
    return gpu.tensor(rows, [R, e.size], 'f32', `${e.name}.directions`);
  });
  return {
    pooled: standardise(read[0] as Float32Array),
    directions,
    gram,
    norms,
    release: () => directions.forEach((t) => t.release()),
  };
}
