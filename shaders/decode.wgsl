// Token-by-token generation with a KV cache: embedding of one token per sequence at its own
// position, row gather (last positions of a prefill), the cache fill after a prefill, and
// single-query causal attention over the cache.
//
// The cache of one layer is kv (B, Tcap, 2C): row t of sequence b holds that position's k (columns
// 0..C) and v (columns C..2C), head h at columns h*HS..h*HS+HS of each, as in GPT-2's fused qkv.
// pos[b] is the position of sequence b's new token: the query attends to cache rows 0..pos[b].
//
// Attention is three dispatches, each with one owner per output and a fixed summation order
// (deterministic without atomics), and the same arithmetic as attention.wgsl's forward, so a decode
// step reproduces the prefill's last row:
// - scores: one invocation per (b, h, t ≤ pos[b]); the one at t = pos[b] also appends the new k, v.
// - softmax: one invocation per (b, h), over its row of scores.
// - attend: one invocation per (b, c) output, summing p·v over the row.

// embed_step and gather_rows may get their table in chunks of rows [v0, v1), as embedding.wgsl's
// forward (unsplit: 0, V).
struct Params { B: u32, T: u32, C: u32, NH: u32, Tcap: u32, V: u32, scale: f32, v0: u32, v1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
// embed_step: ids (token per sequence), pos, wte, wpe, emb_out
// gather_rows: ids (row indices), src (stored f32 or f16: a token embedding table), rows_out
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;
// #storage-type wte_t
// #storage-type wpe_t
@group(0) @binding(3) var<storage, read> wte: array<wte_t>;
@group(0) @binding(4) var<storage, read> wpe: array<wpe_t>;
@group(0) @binding(5) var<storage, read_write> emb_out: array<f32>;
// #storage-type src_t
@group(0) @binding(2) var<storage, read> src: array<src_t>;
@group(0) @binding(3) var<storage, read_write> rows_out: array<f32>;
// kv_fill: qkv (B, T, 3C), kv_out
// scores: qkv (B, 3C), pos, kv_rw, scores_out (B, NH, Tcap)
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> kv_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> kv_rw: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores_out: array<f32>;
// softmax: seq_pos, probs (in place over the scores)
// attend: seq_pos, kv, probs_in, att_out (B, C)
@group(0) @binding(1) var<storage, read> seq_pos: array<u32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read> probs_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> att_out: array<f32>;

override WG: u32 = 64;
// Runtime (not constant) NaN bits: WGSL rejects a NaN constant expression.
var<private> NAN_BITS: u32 = 0x7fc00000u;

// emb_out[b, c] = wte[ids[b], c] + wpe[pos[b], c]; NaN for an id ≥ V, as embedding.wgsl.
@compute @workgroup_size(WG)
fn embed_step(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= p.B * p.C) { return; }
  let b = k / p.C;
  let c = k % p.C;
  let tok = ids[b];
  if (tok >= p.V) {
    if (p.v0 == 0u) { emb_out[k] = bitcast<f32>(NAN_BITS); }
    return;
  }
  if (tok < p.v0 || tok >= p.v1) { return; }
  emb_out[k] = f32(wte[(tok - p.v0) * p.C + c]) + f32(wpe[pos[b] * p.C + c]);
}

// rows_out[i, c] = src[ids[i], c] for i < B rows of width C; NaN where ids[i] is not below src's V
// rows (a token embedding's out-of-range id, as embedding.wgsl does).
@compute @workgroup_size(WG)
fn gather_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= p.B * p.C) { return; }
  let row = ids[k / p.C];
  if (row >= p.V) {
    if (p.v0 == 0u) { rows_out[k] = bitcast<f32>(NAN_BITS); }
    return;
  }
  if (row < p.v0 || row >= p.v1) { return; }
  rows_out[k] = f32(src[(row - p.v0) * p.C + k % p.C]);
}

// After a prefill of T positions: kv_out[b, t, :] = qkv[b, t, C..3C].
@compute @workgroup_size(WG)
fn kv_fill(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  let C2 = 2u * p.C;
  if (k >= p.B * p.T * C2) { return; }
  let j = k % C2;
  let bt = k / C2;
  let b = bt / p.T;
  let t = bt % p.T;
  kv_out[(b * p.Tcap + t) * C2 + j] = qkv[bt * 3u * p.C + p.C + j];
}

// scores_out[b, h, t] = q·k_t / √HS for t ≤ pos[b] (T bounds every pos[b] + 1). The new token's k
// comes from qkv; its invocation also writes k and v into cache row pos[b], which no other
// invocation of this dispatch reads.
@compute @workgroup_size(WG)
fn scores(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.B * p.NH * p.T) { return; }
  let t = i % p.T;
  let bh = i / p.T;
  let h = bh % p.NH;
  let b = bh / p.NH;
  let now = pos[b];
  if (t > now) { return; }
  let hs = p.C / p.NH;
  let q = b * 3u * p.C + h * hs;
  let row = (b * p.Tcap + t) * 2u * p.C + h * hs;
  let fresh = t == now;
  var s = 0.0;
  for (var d = 0u; d < hs; d++) {
    let k = select(kv_rw[row + d], qkv[q + p.C + d], fresh);
    s = fma(qkv[q + d], k, s);
  }
  if (fresh) {
    for (var d = 0u; d < hs; d++) {
      kv_rw[row + d] = qkv[q + p.C + d];
      kv_rw[row + p.C + d] = qkv[q + 2u * p.C + d];
    }
  }
  scores_out[bh * p.Tcap + t] = s * p.scale;
}

// Max-subtracted softmax of each (b, h) row over t ≤ pos[b], in place.
@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.B * p.NH) { return; }
  let row = i * p.Tcap;
  let n = seq_pos[i / p.NH] + 1u;
  var m = -F32_MAX;
  for (var t = 0u; t < n; t++) { m = max(m, probs[row + t]); }
  var sum = 0.0;
  for (var t = 0u; t < n; t++) {
    let e = exp(probs[row + t] - m);
    probs[row + t] = e;
    sum += e;
  }
  let inv = 1.0 / sum;
  for (var t = 0u; t < n; t++) { probs[row + t] *= inv; }
}

// att_out[b, c] = Σ_t p[b, h(c), t] · v_t[c].
@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.B * p.C) { return; }
  let b = i / p.C;
  let c = i % p.C;
  let row = (b * p.NH + c / (p.C / p.NH)) * p.Tcap;
  let n = seq_pos[b] + 1u;
  var o = 0.0;
  for (var t = 0u; t < n; t++) { o = fma(probs_in[row + t], kv[(b * p.Tcap + t) * 2u * p.C + p.C + c], o); }
  att_out[i] = o;
}
