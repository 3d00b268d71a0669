// Single-query attention over a KV cache, in f64: what ops/decode.ts's decodeAttention computes.

/**
 * qkv (B,3C) holds each sequence's new q, k, v; kv (B,Tcap,2C) the cache. Returns the cache with
 * the new k, v at row pos[b], and out (B,C) = softmax(q·kᵀ/√HS)·v over rows 0..pos[b], per head.
 */
export function decodeAttention(qkv: ArrayLike<number>, kv: ArrayLike<number>, pos: ArrayLike<number>, B: number, Tcap: number, C: number, NH: number) {
  const HS = C / NH;
  const cache = Float64Array.from(kv);
  const out = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    const row = (t: number) => (b * Tcap + t) * 2 * C;
    for (let j = 0; j < 2 * C; j++) cache[row(pos[b]!) + j] = qkv[b * 3 * C + C + j]!;
    for (let h = 0; h < NH; h++) {
      const s: number[] = [];
      for (let t = 0; t <= pos[b]!; t++) {
        let dot = 0;
        for (let d = 0; d < HS; d++) dot += qkv[b * 3 * C + h * HS + d]! * cache[row(t) + h * HS + d]!;
        s.push(dot / Math.sqrt(HS));
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const sum = e.reduce((a, x) => a + x, 0);
      for (let d = 0; d < HS; d++) {
        let o = 0;
        e.forEach((w, t) => (o += (w / sum) * cache[row(t) + C + h * HS + d]!));
        out[b * C + h * HS + d] = o;
      }
    }
  }
  return { out, kv: cache };
}
