// CPU references for the transformer's non-matmul ops (GPT-2, after llm.c's train_gpt2.c): plain
// loops in f64, returning Float64Array so finite differences of the forwards can check the
// backwards tightly. Backwards here return fresh gradients (the GPU ops accumulate into theirs).

type Arr = ArrayLike<number>;

// ---- LayerNorm over the last dim: N rows × C -----------------------------------------------------

export function layernormForward(inp: Arr, weight: Arr, bias: Arr, N: number, C: number, eps = 1e-5) {
  const out = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[i * C + c]!;
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (inp[i * C + c]! - m) ** 2;
    const s = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) out[i * C + c] = (inp[i * C + c]! - m) * s * weight[c]! + bias[c]!;
    mean[i] = m;
    rstd[i] = s;
  }
  return { out, mean, rstd };
}

export function layernormBackward(dout: Arr, inp: Arr, weight: Arr, mean: Arr, rstd: Arr, N: number, C: number) {
  const dinp = new Float64Array(N * C);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  for (let i = 0; i < N; i++) {
    const norm = (c: number) => (inp[i * C + c]! - mean[i]!) * rstd[i]!;
    let dnormMean = 0;
    let dnormNormMean = 0;
    for (let c = 0; c < C; c++) {
      const dnorm = weight[c]! * dout[i * C + c]!;
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm(c);
    }
    dnormMean /= C;
    dnormNormMean /= C;
    for (let c = 0; c < C; c++) {
      const d = dout[i * C + c]!;
      dbias[c]! += d;
      dweight[c]! += norm(c) * d;
      dinp[i * C + c] = (weight[c]! * d - dnormMean - norm(c) * dnormNormMean) * rstd[i]!;
    }
  }
  return { dinp, dweight, dbias };
}

// ---- Causal self-attention: qkv (B,T,3C) → out (B,T,C), att (B,NH,T,T) ---------------------------

/** Offset of head h's slice of q (part 0), k (1) or v (2) at position (b,t) in qkv. */
const qkvAt = (b: number, t: number, part: number, h: number, T: number, C: number, HS: number) => (b * T + t) * 3 * C + part * C + h * HS;

export function attentionForward(qkv: Arr, B: number, T: number, C: number, NH: number) {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const out = new Float64Array(B * T * C);
  const att = new Float64Array(B * NH * T * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const row = ((b * NH + h) * T + t) * T;
        const q = qkvAt(b, t, 0, h, T, C, HS);
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const k = qkvAt(b, t2, 1, h, T, C, HS);
          let s = 0;
          for (let d = 0; d < HS; d++) s += qkv[q + d]! * qkv[k + d]!;
          att[row + t2] = s * scale;
          max = Math.max(max, s * scale);
        }
        let sum = 0;
        for (let t2 = 0; t2 <= t; t2++) sum += att[row + t2] = Math.exp(att[row + t2]! - max);
        for (let t2 = 0; t2 <= t; t2++) att[row + t2]! /= sum;
        for (let d = 0; d < HS; d++) {
          let o = 0;
          for (let t2 = 0; t2 <= t; t2++) o += att[row + t2]! * qkv[qkvAt(b, t2, 2, h, T, C, HS) + d]!;
          out[(b * T + t) * C + h * HS + d] = o;
        }
      }
    }
  }
  return { out, att };
}

export function attentionBackward(dout: Arr, qkv: Arr, att: Arr, B: number, T: number, C: number, NH: number): Float64Array {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const dqkv = new Float64Array(B * T * 3 * C);
  const datt = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const row = ((b * NH + h) * T + t) * T;
        const o = (b * T + t) * C + h * HS;
        const q = qkvAt(b, t, 0, h, T, C, HS);
        // out = att · v
        for (let t2 = 0; t2 <= t; t2++) {
          const v = qkvAt(b, t2, 2, h, T, C, HS);
          datt[t2] = 0;
          for (let d = 0; d < HS; d++) {
            datt[t2]! += dout[o + d]! * qkv[v + d]!;
            dqkv[v + d]! += att[row + t2]! * dout[o + d]!;
          }
        }
        // softmax
        let dot = 0;
        for (let t2 = 0; t2 <= t; t2++) dot += att[row + t2]! * datt[t2]!;
        // scores = scale · q·k
        for (let t2 = 0; t2 <= t; t2++) {
          const dpre = att[row + t2]! * (datt[t2]! - dot) * scale;
          const k = qkvAt(b, t2, 1, h, T, C, HS);
          for (let d = 0; d < HS; d++) {
            dqkv[q + d]! += dpre * qkv[k + d]!;
            dqkv[k + d]! += dpre * qkv[q + d]!;
          }
        }
      }
    }
  }
  return dqkv;
}

// ---- Embedding: out[b,t] = wte[tokens[b,t]] + wpe[t] ---------------------------------------------

export function embeddingForward(tokens: Arr, wte: Arr, wpe: Arr, B: number, T: number, C: number): Float64Array {
  const out = new Float64Array(B * T * C);
  for (let i = 0; i < B * T; i++) {
    const tok = tokens[i]!;
    const t = i % T;
    for (let c = 0; c < C; c++) out[i * C + c] = wte[tok * C + c]! + wpe[t * C + c]!;
  }
  return out;
}

export function embeddingBackward(dout: Arr, tokens: Arr, B: number, T: number, C: number, V: number, maxT: number) {
  const dwte = new Float64Array(V * C);
  const dwpe = new Float64Array(maxT * C);
  for (let i = 0; i < B * T; i++) {
    const tok = tokens[i]!;
    const t = i % T;
    for (let c = 0; c < C; c++) {
      dwte[tok * C + c]! += dout[i * C + c]!;
      dwpe[t * C + c]! += dout[i * C + c]!;
    }
  }
  return { dwte, dwpe };
}

// ---- Cross-entropy with softmax over V; target IGNORE gives no loss ------------------------------

export const IGNORE = 0xffffffff;

export function crossEntropyForward(logits: Arr, targets: Arr, N: number, V: number) {
  const losses = new Float64Array(N);
  const lse = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[i * V + j]!);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[i * V + j]! - max);
    lse[i] = max + Math.log(sum);
    losses[i] = targets[i] === IGNORE ? 0 : lse[i]! - logits[i * V + targets[i]!]!;
  }
  return { losses, lse };
}

/** Mean loss over the rows with a target (0 when there are none). */
export function crossEntropyMean(losses: Arr, targets: Arr): number {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < losses.length; i++) {
    if (targets[i] !== IGNORE) {
      sum += losses[i]!;
      count++;
    }
  }
  return count ? sum / count : 0;
}

export function crossEntropyBackward(logits: Arr, targets: Arr, dlosses: Arr, N: number, V: number): Float64Array {
  const { lse } = crossEntropyForward(logits, targets, N, V);
  const dlogits = new Float64Array(N * V);
  for (let i = 0; i < N; i++) {
    if (targets[i] === IGNORE) continue;
    for (let j = 0; j < V; j++) {
      const p = Math.exp(logits[i * V + j]! - lse[i]!);
      dlogits[i * V + j] = (p - (j === targets[i] ? 1 : 0)) * dlosses[i]!;
    }
  }
  return dlogits;
}
