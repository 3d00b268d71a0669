// A plain CPU GPT-2 in f64: forward (mean cross-entropy over targets that are not IGNORE) and the
// gradient of every parameter. Slow and obviously right; the GPU model is tested against it.
import { paramSpecs, type GPT2Config } from '../model/config.ts';

export const IGNORE = 0xffffffff;
export type Params = Map<string, Float64Array>;
type Arr = Float64Array;

const GELU_K = Math.sqrt(2 / Math.PI);

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

// Accumulates dx (if given), dW and db from dy.
function linearBack(dy: Arr, x: Arr, w: Arr, N: number, I: number, O: number, dx: Arr | null, dw: Arr, db: Arr): void {
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) db[o]! += dy[n * O + o]!;
    for (let i = 0; i < I; i++) {
      let s = 0;
      const xi = x[n * I + i]!;
      for (let o = 0; o < O; o++) {
        const g = dy[n * O + o]!;
        dw[i * O + o]! += xi * g;
        s += w[i * O + o]! * g;
      }
      if (dx) dx[n * I + i]! += s;
    }
  }
}

function layernorm(x: Arr, w: Arr, b: Arr, N: number, C: number) {
  const y = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let m = 0;
    for (let c = 0; c < C; c++) m += x[n * C + c]!;
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[n * C + c]! - m) ** 2;
    const r = 1 / Math.sqrt(v / C + 1e-5);
    for (let c = 0; c < C; c++) y[n * C + c] = (x[n * C + c]! - m) * r * w[c]! + b[c]!;
    mean[n] = m;
    rstd[n] = r;
  }
  return { y, mean, rstd };
}

function layernormBack(dy: Arr, x: Arr, w: Arr, mean: Arr, rstd: Arr, N: number, C: number, dx: Arr, dw: Arr, db: Arr): void {
  for (let n = 0; n < N; n++) {
    let dnormMean = 0;
    let dnormNormMean = 0;
    for (let c = 0; c < C; c++) {
      const norm = (x[n * C + c]! - mean[n]!) * rstd[n]!;
      const dnorm = w[c]! * dy[n * C + c]!;
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm;
    }
    dnormMean /= C;
    dnormNormMean /= C;
    for (let c = 0; c < C; c++) {
      const norm = (x[n * C + c]! - mean[n]!) * rstd[n]!;
      const g = dy[n * C + c]!;
      db[c]! += g;
      dw[c]! += norm * g;
      dx[n * C + c]! += (w[c]! * g - dnormMean - norm * dnormNormMean) * rstd[n]!;
    }
  }
}

// qkv (B,T,3C) → out (B,T,C); att holds the softmax probabilities (B,NH,T,T).
function attention(qkv: Arr, B: number, T: number, C: number, NH: number) {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const out = new Float64Array(B * T * C);
  const att = new Float64Array(B * NH * T * T);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * HS;
        const row = ((b * NH + h) * T + t) * T;
        let max = -Infinity;
        for (let u = 0; u <= t; u++) {
          const k = (b * T + u) * 3 * C + C + h * HS;
          let s = 0;
          for (let i = 0; i < HS; i++) s += qkv[q + i]! * qkv[k + i]!;
          att[row + u] = s * scale;
          max = Math.max(max, s * scale);
        }
        let sum = 0;
        for (let u = 0; u <= t; u++) sum += att[row + u] = Math.exp(att[row + u]! - max);
        for (let u = 0; u <= t; u++) att[row + u]! /= sum;
        const o = (b * T + t) * C + h * HS;
        for (let u = 0; u <= t; u++) {
          const v = (b * T + u) * 3 * C + 2 * C + h * HS;
          for (let i = 0; i < HS; i++) out[o + i]! += att[row + u]! * qkv[v + i]!;
        }
      }
  return { out, att };
}

function attentionBack(dout: Arr, qkv: Arr, att: Arr, B: number, T: number, C: number, NH: number, dqkv: Arr): void {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let t = 0; t < T; t++) {
        const row = ((b * NH + h) * T + t) * T;
        const o = (b * T + t) * C + h * HS;
        const datt = new Float64Array(t + 1);
        for (let u = 0; u <= t; u++) {
          const v = (b * T + u) * 3 * C + 2 * C + h * HS;
          for (let i = 0; i < HS; i++) {
            datt[u]! += qkv[v + i]! * dout[o + i]!;
            dqkv[v + i]! += att[row + u]! * dout[o + i]!;
          }
        }
        let dot = 0;
        for (let u = 0; u <= t; u++) dot += att[row + u]! * datt[u]!;
        const q = (b * T + t) * 3 * C + h * HS;
        for (let u = 0; u <= t; u++) {
          const dpre = att[row + u]! * (datt[u]! - dot) * scale;
          const k = (b * T + u) * 3 * C + C + h * HS;
          for (let i = 0; i < HS; i++) {
            dqkv[q + i]! += dpre * qkv[k + i]!;
            dqkv[k + i]! += dpre * qkv[q + i]!;
          }
        }
      }
}

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(GELU_K * (x + 0.044715 * x ** 3)));
function geluGrad(x: number): number {
  const u = GELU_K * (x + 0.044715 * x ** 3);
  const th = Math.tanh(u);
  return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * GELU_K * (1 + 3 * 0.044715 * x * x);
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
  type LN = ReturnType<typeof layernorm>;
  const caches: { x: Arr; ln1: LN; qkv: Arr; at: ReturnType<typeof attention>; x2: Arr; ln2: LN; fc: Arr; act: Arr }[] = [];
  const hidden: Arr[] = [];
  for (let l = 0; l < L; l++) {
    const h = (s: string) => P(`h.${l}.${s}`);
    const ln1 = layernorm(x, h('ln_1.weight'), h('ln_1.bias'), N, C);
    const qkv = linear(ln1.y, h('attn.c_attn.weight'), h('attn.c_attn.bias'), N, C, 3 * C);
    const at = attention(qkv, B, T, C, NH);
    const proj = linear(at.out, h('attn.c_proj.weight'), h('attn.c_proj.bias'), N, C, C);
    const x2 = x.map((v, i) => v + proj[i]!);
    const ln2 = layernorm(x2, h('ln_2.weight'), h('ln_2.bias'), N, C);
    const fc = linear(ln2.y, h('mlp.c_fc.weight'), h('mlp.c_fc.bias'), N, C, 4 * C);
    const act = fc.map(gelu);
    const mlp = linear(act, h('mlp.c_proj.weight'), h('mlp.c_proj.bias'), N, 4 * C, C);
    const x3 = x2.map((v, i) => v + mlp[i]!);
    caches.push({ x, ln1, qkv, at, x2, ln2, fc, act });
    x = x3;
    hidden.push(x3);
  }
  const lnf = layernorm(x, P('ln_f.weight'), P('ln_f.bias'), N, C);
  const logits = new Float64Array(N * V);
  const probs = new Float64Array(N * V);
  let loss = 0;
  let count = 0;
  for (let n = 0; n < N; n++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += lnf.y[n * C + c]! * wte[v * C + c]!;
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
    const dlnf = new Float64Array(N * C);
    const dwte = G('wte.weight');
    for (let n = 0; n < N; n++) {
      if (targets[n] === IGNORE) continue;
      for (let v = 0; v < V; v++) {
        const dl = (probs[n * V + v]! - (v === targets[n] ? 1 : 0)) / count;
        for (let c = 0; c < C; c++) {
          dlnf[n * C + c]! += dl * wte[v * C + c]!;
          dwte[v * C + c]! += dl * lnf.y[n * C + c]!;
        }
      }
    }
    let dx = new Float64Array(N * C);
    layernormBack(dlnf, x, P('ln_f.weight'), lnf.mean, lnf.rstd, N, C, dx, G('ln_f.weight'), G('ln_f.bias'));
    for (let l = L - 1; l >= 0; l--) {
      const h = (s: string) => P(`h.${l}.${s}`);
      const g = (s: string) => G(`h.${l}.${s}`);
      const c = caches[l]!;
      // x3 = x2 + mlp(ln2(x2)): dx flows to x2 directly and through the MLP.
      const dx2 = dx.slice();
      const dact = new Float64Array(N * 4 * C);
      linearBack(dx, c.act, h('mlp.c_proj.weight'), N, 4 * C, C, dact, g('mlp.c_proj.weight'), g('mlp.c_proj.bias'));
      const dfc = dact.map((d, i) => d * geluGrad(c.fc[i]!));
      const dln2 = new Float64Array(N * C);
      linearBack(dfc, c.ln2.y, h('mlp.c_fc.weight'), N, C, 4 * C, dln2, g('mlp.c_fc.weight'), g('mlp.c_fc.bias'));
      layernormBack(dln2, c.x2, h('ln_2.weight'), c.ln2.mean, c.ln2.rstd, N, C, dx2, g('ln_2.weight'), g('ln_2.bias'));
      // x2 = x + proj(attn(ln1(x))).
      const dx1 = dx2.slice();
      const datt = new Float64Array(N * C);
      linearBack(dx2, c.at.out, h('attn.c_proj.weight'), N, C, C, datt, g('attn.c_proj.weight'), g('attn.c_proj.bias'));
      const dqkv = new Float64Array(N * 3 * C);
      attentionBack(datt, c.qkv, c.at.att, B, T, C, NH, dqkv);
      const dln1 = new Float64Array(N * C);
      linearBack(dqkv, c.ln1.y, h('attn.c_attn.weight'), N, C, 3 * C, dln1, g('attn.c_attn.weight'), g('attn.c_attn.bias'));
      layernormBack(dln1, c.x, h('ln_1.weight'), c.ln1.mean, c.ln1.rstd, N, C, dx1, g('ln_1.weight'), g('ln_1.bias'));
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
