// A plain CPU Llama-family model in f64, written from Hugging Face's modeling_llama / modeling_qwen2
// (not from the GPU code): RMSNorm, rotary embeddings (rotate_half), grouped-query attention
// (kv head h / (NH/KVH) per query head), SwiGLU, tied or untied head, q/k/v biases. Forward only,
// with the loss; the GPU backward is checked against its finite differences. The single ops'
// backwards are here too, each checked by finite differences, for the kernels' tests.
import { llamaParamSpecs, ropeInvFreq, type LlamaConfig } from '../model/llama-config.ts';
import { IGNORE, crossEntropyForward, crossEntropyMean } from './transformer.ts';

type Arr = ArrayLike<number>;
export type Params = Map<string, Float64Array>;

// ---- RMSNorm over the last dim: N rows × C ---------------------------------------------------------

export function rmsnormForward(x: Arr, w: Arr, N: number, C: number, eps: number) {
  const out = new Float64Array(N * C);
  const rstd = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[i * C + c]! ** 2;
    const s = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[i * C + c] = x[i * C + c]! * s * w[c]!;
    rstd[i] = s;
  }
  return { out, rstd };
}

export function rmsnormBackward(dout: Arr, x: Arr, w: Arr, N: number, C: number, eps: number) {
  const dinp = new Float64Array(N * C);
  const dweight = new Float64Array(C);
  const { rstd } = rmsnormForward(x, w, N, C, eps);
  for (let i = 0; i < N; i++) {
    const s = rstd[i]!;
    // d/dx_j of x_c·s = s·δ_cj − x_c·x_j·s³/C
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dout[i * C + c]! * w[c]! * x[i * C + c]!;
    for (let c = 0; c < C; c++) {
      dinp[i * C + c] = dout[i * C + c]! * w[c]! * s - (x[i * C + c]! * s ** 3 * dot) / C;
      dweight[c]! += dout[i * C + c]! * x[i * C + c]! * s;
    }
  }
  return { dinp, dweight };
}

// ---- Rotary embedding: rows of H heads × HD, row n at position pos[n] ------------------------------

/** Rotates x by +angle (dir 1) or −angle (dir −1): the backward is the rotation back. */
export function rope(x: Arr, pos: Arr, H: number, HD: number, invFreq: Arr, dir = 1): Float64Array {
  const out = Float64Array.from(x);
  const half = HD / 2;
  const N = x.length / (H * HD);
  for (let n = 0; n < N; n++) {
    for (let h = 0; h < H; h++) {
      const base = (n * H + h) * HD;
      for (let i = 0; i < half; i++) {
        const a = pos[n]! * invFreq[i]!;
        const [c, s] = [Math.cos(a), dir * Math.sin(a)];
        const x1 = x[base + i]!;
        const x2 = x[base + i + half]!;
        out[base + i] = x1 * c - x2 * s;
        out[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

// ---- SwiGLU -----------------------------------------------------------------------------------------

const sigmoid = (g: number) => 1 / (1 + Math.exp(-g));

export const swiglu = (gate: Arr, up: Arr): Float64Array => Float64Array.from(gate, (g, i) => g * sigmoid(g) * up[i]!);

export function swigluBackward(gate: Arr, up: Arr, dout: Arr) {
  const dgate = Float64Array.from(gate, (g, i) => dout[i]! * up[i]! * sigmoid(g) * (1 + g * (1 - sigmoid(g))));
  const dup = Float64Array.from(gate, (g, i) => dout[i]! * g * sigmoid(g));
  return { dgate, dup };
}

// ---- Grouped-query causal attention: q (B,T,NH·HD), k and v (B,T,KVH·HD) → (B,T,NH·HD) ------------

export function gqaAttention(q: Arr, k: Arr, v: Arr, B: number, T: number, NH: number, KVH: number, HD: number): Float64Array {
  const out = new Float64Array(B * T * NH * HD);
  const G = NH / KVH;
  const scale = 1 / Math.sqrt(HD);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const kh = Math.floor(h / G);
      for (let t = 0; t < T; t++) {
        const qo = (b * T + t) * NH * HD + h * HD;
        const scores = new Float64Array(t + 1);
        for (let s = 0; s <= t; s++) {
          const ko = (b * T + s) * KVH * HD + kh * HD;
          let dot = 0;
          for (let d = 0; d < HD; d++) dot += q[qo + d]! * k[ko + d]!;
          scores[s] = dot * scale;
        }
        const max = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - max));
        const sum = e.reduce((a, x) => a + x, 0);
        for (let s = 0; s <= t; s++) {
          const vo = (b * T + s) * KVH * HD + kh * HD;
          for (let d = 0; d < HD; d++) out[qo + d]! += (e[s]! / sum) * v[vo + d]!;
        }
      }
    }
  }
  return out;
}

// ---- The model ----------------------------------------------------------------------------------------

/** y (N, O) = x (N, I) · Wᵀ + b, W stored (O, I) as nn.Linear does. */
function linear(x: Arr, w: Arr, N: number, I: number, O: number, b?: Arr): Float64Array {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < I; i++) s += x[n * I + i]! * w[o * I + i]!;
      y[n * O + o] = s;
    }
  }
  return y;
}

const plus = (a: Arr, b: Arr) => Float64Array.from(a, (x, i) => x + b[i]!);

export function initParams(config: LlamaConfig, rng: { normal(): number }, std = 0.02): Params {
  const params: Params = new Map();
  for (const p of llamaParamSpecs(config)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const a = new Float64Array(n);
    if (p.init === 'ones') a.fill(1);
    else if (p.init !== 'zeros') for (let i = 0; i < n; i++) a[i] = std * rng.normal();
    params.set(p.name, a);
  }
  return params;
}

export interface LlamaForward {
  /** Logits (B·T × V). */
  logits: Float64Array;
  /** Mean cross-entropy over targets that are not IGNORE (0 without targets). */
  loss: number;
}

export function forward(c: LlamaConfig, params: Params, tokens: Arr, B: number, T: number, targets?: Arr): LlamaForward {
  const { nEmbd: C, nHead: NH, nKvHead: KVH, headDim: HD, intermediate: I, vocabSize: V } = c;
  const N = B * T;
  const P = (name: string) => {
    const p = params.get(name);
    if (!p) throw new RangeError(`reference llama: no parameter ${name}`);
    return p;
  };
  const emb = P('model.embed_tokens.weight');
  let x = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    const id = tokens[n]!;
    if (!(id >= 0 && id < V)) throw new RangeError(`reference llama: token ${id} at ${n} is outside the vocabulary`);
    for (let j = 0; j < C; j++) x[n * C + j] = emb[id * C + j]!;
  }
  const pos = Array.from({ length: N }, (_, n) => n % T);
  const inv = ropeInvFreq(c);
  for (let l = 0; l < c.nLayer; l++) {
    const p = (s: string) => P(`model.layers.${l}.${s}`);
    const b = (s: string) => (c.qkvBias ? p(`self_attn.${s}.bias`) : undefined);
    const h = rmsnormForward(x, p('input_layernorm.weight'), N, C, c.rmsEps).out;
    const q = rope(linear(h, p('self_attn.q_proj.weight'), N, C, NH * HD, b('q_proj')), pos, NH, HD, inv);
    const k = rope(linear(h, p('self_attn.k_proj.weight'), N, C, KVH * HD, b('k_proj')), pos, KVH, HD, inv);
    const v = linear(h, p('self_attn.v_proj.weight'), N, C, KVH * HD, b('v_proj'));
    const att = gqaAttention(q, k, v, B, T, NH, KVH, HD);
    x = plus(x, linear(att, p('self_attn.o_proj.weight'), N, NH * HD, C));
    const h2 = rmsnormForward(x, p('post_attention_layernorm.weight'), N, C, c.rmsEps).out;
    const act = swiglu(linear(h2, p('mlp.gate_proj.weight'), N, C, I), linear(h2, p('mlp.up_proj.weight'), N, C, I));
    x = plus(x, linear(act, p('mlp.down_proj.weight'), N, I, C));
  }
  const hf = rmsnormForward(x, P('model.norm.weight'), N, C, c.rmsEps).out;
  const logits = linear(hf, P(c.tied ? 'model.embed_tokens.weight' : 'lm_head.weight'), N, C, V);
  if (!targets) return { logits, loss: 0 };
  const { losses } = crossEntropyForward(logits, targets, N, V);
  return { logits, loss: crossEntropyMean(losses, targets) };
}

export { IGNORE };
