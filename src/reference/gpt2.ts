// A plain CPU GPT-2 in f64: forward (mean cross-entropy over targets that are not IGNORE) and the
// gradient of every parameter. Slow and obviously right; the GPU model is tested against it.
import { paramSpecs, type GPT2Config } from '../model/config.ts';
import { linearBackward } from './matmul.ts';
import { gelu, geluBackward } from './ops.ts';
import { attentionBackward, attentionForward, layernormBackward, layernormForward } from './transformer.ts';

export const IGNORE = 0xffffffff;
export type Params = Map<string, Float64Array>;
type Arr = Float64Array;

// y[N,O] = x[N,I]·W[I,O] + b
function linear(x: Arr, w: Arr, b: Arr, N: number, I: number, O: number): Arr {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) y[n * O + o] = b[o]!;
    for (let i = 0; i < I; i++) {
      const xi = x[n * I + i]!;
      for (let o = 0; o < O; o++) y[n * O + o]! += xi * w[i * O + o]!;
    }
  }
  return y;
}

/** dst += src: the shared references return fresh gradients; the model sums them into its own. */
function addInto(dst: Arr, src: Arr): void {
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}

export function initParams(config: GPT2Config, rng: { normal(): number }): Params {
  const params: Params = new Map();
  const residualStd = 0.02 / Math.sqrt(2 * config.nLayer);
  for (const p of paramSpecs(config)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const a = new Float64Array(n);
    if (p.init === 'ones') a.fill(1);
    else if (p.init !== 'zeros') for (let i = 0; i < n; i++) a[i] = (p.init === 'residual' ? residualStd : 0.02) * rng.normal();
    params.set(p.name, a);
  }
  return params;
}

export interface ForwardResult {
  loss: number;
  /** Logits (B·T × V). */
  logits: Arr;
  /** Hidden states after each block (nLayer entries, B·T × C), for context features. */
  hidden: Arr[];
  backward: () => Params;
}

/** Mean cross-entropy over positions whose target is not IGNORE; `backward()` gives d(loss)/d(param). */
export function forward(config: GPT2Config, params: Params, tokens: ArrayLike<number>, targets: ArrayLike<number>, B: number, T: number): ForwardResult {
  const { vocabSize: V, nEmbd: C, nHead: NH, nLayer: L } = config;
  const N = B * T;
  const P = (name: string) => params.get(name)!;
  const wte = P('wte.weight');
  const wpe = P('wpe.weight');
  let x = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    const tok = tokens[n]!;
    if (tok >= V) throw new RangeError(`token ${tok} at ${n} is outside the vocabulary (${V})`);
    for (let c = 0; c < C; c++) x[n * C + c] = wte[tok * C + c]! + wpe[(n % T) * C + c]!;
  }
  type LN = ReturnType<typeof layernormForward>;
  const caches: { x: Arr; ln1: LN; qkv: Arr; at: ReturnType<typeof attentionForward>; x2: Arr; ln2: LN; fc: Arr; act: Arr }[] = [];
  const hidden: Arr[] = [];
  for (let l = 0; l < L; l++) {
    const h = (s: string) => P(`h.${l}.${s}`);
    const ln1 = layernormForward(x, h('ln_1.weight'), h('ln_1.bias'), N, C);
    const qkv = linear(ln1.out, h('attn.c_attn.weight'), h('attn.c_attn.bias'), N, C, 3 * C);
    const at = attentionForward(qkv, B, T, C, NH);
    const proj = linear(at.out, h('attn.c_proj.weight'), h('attn.c_proj.bias'), N, C, C);
    const x2 = x.map((v, i) => v + proj[i]!);
    const ln2 = layernormForward(x2, h('ln_2.weight'), h('ln_2.bias'), N, C);
    const fc = linear(ln2.out, h('mlp.c_fc.weight'), h('mlp.c_fc.bias'), N, C, 4 * C);
    const act = gelu(fc);
    const mlp = linear(act, h('mlp.c_proj.weight'), h('mlp.c_proj.bias'), N, 4 * C, C);
    const x3 = x2.map((v, i) => v + mlp[i]!);
    caches.push({ x, ln1, qkv, at, x2, ln2, fc, act });
    x = x3;
    hidden.push(x3);
  }
  const lnf = layernormForward(x, P('ln_f.weight'), P('ln_f.bias'), N, C);
  const logits = new Float64Array(N * V);
  const probs = new Float64Array(N * V);
  let loss = 0;
  let count = 0;
  for (let n = 0; n < N; n++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += lnf.out[n * C + c]! * wte[v * C + c]!;
      logits[n * V + v] = s;
      max = Math.max(max, s);
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += probs[n * V + v] = Math.exp(logits[n * V + v]! - max);
    for (let v = 0; v < V; v++) probs[n * V + v]! /= sum;
    if (targets[n] !== IGNORE) {
      loss -= Math.log(probs[n * V + targets[n]!]!);
      count++;
    }
  }
  loss = count ? loss / count : 0;

  const backward = (): Params => {
    const grads: Params = new Map([...params].map(([k, v]) => [k, new Float64Array(v.length)]));
    const G = (name: string) => grads.get(name)!;
    const addParamGrads = (prefix: string, dw: Arr, db: Arr) => {
      addInto(G(`${prefix}.weight`), dw);
      addInto(G(`${prefix}.bias`), db);
    };
    /** Backward of y = x·W + b (layer `prefix`): sums dW, db into the grads and returns dx. */
    const linearBack = (prefix: string, dy: Arr, x: Arr, I: number, O: number): Arr => {
      const { dx, dw, dbias } = linearBackward(x, P(`${prefix}.weight`), dy, N, I, O);
      addParamGrads(prefix, dw, dbias);
      return dx;
    };
    /** Backward of layer norm `prefix`: sums its dweight, dbias into the grads and dinp into dx. */
    const layernormBack = (prefix: string, dy: Arr, inp: Arr, ln: LN, dx: Arr) => {
      const { dinp, dweight, dbias } = layernormBackward(dy, inp, P(`${prefix}.weight`), ln.mean, ln.rstd, N, C);
      addParamGrads(prefix, dweight, dbias);
      addInto(dx, dinp);
    };
    const dlnf = new Float64Array(N * C);
    const dwte = G('wte.weight');
    for (let n = 0; n < N; n++) {
      if (targets[n] === IGNORE) continue;
      for (let v = 0; v < V; v++) {
        const dl = (probs[n * V + v]! - (v === targets[n] ? 1 : 0)) / count;
        for (let c = 0; c < C; c++) {
          dlnf[n * C + c]! += dl * wte[v * C + c]!;
          dwte[v * C + c]! += dl * lnf.out[n * C + c]!;
        }
      }
    }
    let dx = new Float64Array(N * C);
    layernormBack('ln_f', dlnf, x, lnf, dx);
    for (let l = L - 1; l >= 0; l--) {
      const h = (s: string) => `h.${l}.${s}`;
      const c = caches[l]!;
      // x3 = x2 + mlp(ln2(x2)): dx flows to x2 directly and through the MLP.
      const dx2 = dx.slice();
      const dact = linearBack(h('mlp.c_proj'), dx, c.act, 4 * C, C);
      const dfc = geluBackward(c.fc, dact);
      const dln2 = linearBack(h('mlp.c_fc'), dfc, c.ln2.out, C, 4 * C);
      layernormBack(h('ln_2'), dln2, c.x2, c.ln2, dx2);
      // x2 = x + proj(attn(ln1(x))).
      const dx1 = dx2.slice();
      const datt = linearBack(h('attn.c_proj'), dx2, c.at.out, C, C);
      const dqkv = attentionBackward(datt, c.qkv, c.at.att, B, T, C, NH);
      const dln1 = linearBack(h('attn.c_attn'), dqkv, c.ln1.out, C, 3 * C);
      layernormBack(h('ln_1'), dln1, c.x, c.ln1, dx1);
      dx = dx1;
    }
    const dwpe = G('wpe.weight');
    for (let n = 0; n < N; n++) {
      const tok = tokens[n]!;
      for (let c = 0; c < C; c++) {
        dwte[tok * C + c]! += dx[n * C + c]!;
        dwpe[(n % T) * C + c]! += dx[n * C + c]!;
      }
    }
    return grads;
  };
  return { loss, logits, hidden, backward };
}
