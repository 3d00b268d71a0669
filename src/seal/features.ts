// Context features of a passage, from the frozen base model. Computed once per passage: the base
// never changes, so neither do they.
//  - pooled: the mean over the passage's tokens of one layer's hidden states (what the passage is about);
//  - direction: minus the unit gradient of the passage's LM loss at the masked parameters, packed
//    like the action (what the model would have to change to know it; MEND conditions on the same).
import type { Tokenizer } from '../io/tokenizer.ts';
import type { GPT2 } from '../model/gpt2.ts';
import { editBackward } from '../ops/edit.ts';
import { matmul } from '../ops/matmul.ts';
import type { Mask } from './mask.ts';

export interface PassageFeatures {
  pooled: Float32Array;
  direction?: Float32Array;
}

/** The passage's tokens, cut to the model's context (+1 for the LM targets). */
function passageTokens(model: GPT2, tok: Tokenizer, text: string): number[] {
  const ids = tok.encode(text);
  if (ids.length < 2) throw new RangeError(`passage '${text.slice(0, 40)}' is too short to have features`);
  return ids.slice(0, model.config.nCtx + 1);
}

export async function passageFeatures(model: GPT2, tok: Tokenizer, text: string, layer: number, mask?: Mask): Promise<PassageFeatures> {
  const gpu = model.gpu;
  const { nLayer, nEmbd: C } = model.config;
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayer) throw new RangeError(`feature layer ${layer} is not a layer of this model (0..${nLayer - 1})`);
  const ids = passageTokens(model, tok, text);
  const T = ids.length - 1;
  const tokens = gpu.tensor(Uint32Array.from(ids.slice(0, T)), [1, T]);
  const targets = gpu.tensor(Uint32Array.from(ids.slice(1)), [1, T]);
  const pass = model.forward(tokens, targets);
  const ones = gpu.tensor(new Float32Array(T).fill(1), [1, T]);
  const pooled = matmul(gpu, ones, pass.hidden[layer]!.reshape([T, C]), { alpha: 1 / T });
  const out: PassageFeatures = { pooled: new Float32Array(0) };
  const toRead = [pooled];
  let grads: ReturnType<GPT2['zerosLike']> | null = null;
  let packed = null;
  if (mask) {
    grads = model.zerosLike();
    pass.backward(grads);
    packed = gpu.zeros([mask.paramDim]);
    // The gather reads only dW; the edit's action just fixes where each tensor's part goes.
    const layout = gpu.empty([mask.paramDim]);
    for (const e of mask.entries) editBackward(gpu, grads.get(e.name)!, { kind: 'dense', mask: [e.block], delta: layout, offset: e.offset, alpha: 1 }, packed);
    layout.release();
    toRead.push(packed);
  }
  const [p, g] = await gpu.readMany(toRead);
  out.pooled = p as Float32Array;
  if (g) {
    let n = 0;
    for (const v of g as Float32Array) n += v * v;
    const s = n > 0 ? -1 / Math.sqrt(n) : 0;
    out.direction = (g as Float32Array).map((v) => v * s);
  }
  for (const t of [tokens, targets, ones, pooled, ...(packed ? [packed] : [])]) t.release();
  if (grads) for (const t of grads.values()) t.release();
  pass.release();
  return out;
}
