// Causal multi-head self-attention over GPT-2's fused qkv (B,T,3C): q, k, v side by side in the
// last dim, head h at columns h*HS..h*HS+HS of each. Softmax lives here, fused into the forward.
//
// forward: one invocation per (b,h,t) query row computes scores, softmax (max-subtracted) and the
// weighted sum of v; it saves the probabilities att (B,NH,T,T), zero above the diagonal.
// backward: dq is a gather over the row (row_backward, which also saves dpre = d(scores) in a
// scratch (B,NH,T,T)); dk and dv are gathers over the column of att / dpre (column_backward), so
// each gradient element has one owner summing in a fixed order: deterministic without atomics.
// Both backward kernels ACCUMULATE into dqkv (+=), as llm.c does.
// No private arrays (they spill on lavapipe): loops run over keys inside, head dim outside.

struct Params { B: u32, T: u32, C: u32, NH: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
// forward: qkv, att_out, out
@group(0) @binding(2) var<storage, read_write> att_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// backward: qkv, att, dout, dpre (written by row_backward, read by column_backward), dqkv
@group(0) @binding(2) var<storage, read> att: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dpre_out: array<f32>;
@group(0) @binding(4) var<storage, read> dpre: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;

override WG: u32 = 64;

// One (b,h,t) row: where its q/k/v slices start, where its att row starts, where its out row starts.
struct Row { t: u32, q: u32, att: u32, out: u32, hs: u32 }

fn row_of(wid: vec3u, nwg: vec3u, lid: vec3u) -> Row {
  let i = flat(wid, nwg, lid);
  let t = i % p.T;
  let bh = i / p.T;
  let h = bh % p.NH;
  let b = bh / p.NH;
  let hs = p.C / p.NH;
  return Row(t, (b * p.T + t) * 3u * p.C + h * hs, i * p.T, (b * p.T + t) * p.C + h * hs, hs);
}

// Offset of position t2's q slice for the same (b,h) as r; its k is at +C, its v at +2C.
fn at(r: Row, t2: u32) -> u32 {
  return r.q - r.t * 3u * p.C + t2 * 3u * p.C;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = row_of(wid, nwg, lid);
  if (r.att >= p.B * p.NH * p.T * p.T) { return; }
  var m = -F32_MAX;
  for (var t2 = 0u; t2 <= r.t; t2++) {
    let k = at(r, t2) + p.C;
    var s = 0.0;
    for (var d = 0u; d < r.hs; d++) { s = fma(qkv[r.q + d], qkv[k + d], s); }
    s *= p.scale;
    att_out[r.att + t2] = s;
    m = max(m, s);
  }
  var sum = 0.0;
  for (var t2 = 0u; t2 <= r.t; t2++) {
    let e = exp(att_out[r.att + t2] - m);
    att_out[r.att + t2] = e;
    sum += e;
  }
  let inv = 1.0 / sum;
  for (var t2 = 0u; t2 <= r.t; t2++) { att_out[r.att + t2] *= inv; }
  for (var t2 = r.t + 1u; t2 < p.T; t2++) { att_out[r.att + t2] = 0.0; }
  for (var d = 0u; d < r.hs; d++) {
    var o = 0.0;
    for (var t2 = 0u; t2 <= r.t; t2++) { o = fma(att_out[r.att + t2], qkv[at(r, t2) + 2u * p.C + d], o); }
    out[r.out + d] = o;
  }
}

@compute @workgroup_size(WG)
fn row_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = row_of(wid, nwg, lid);
  if (r.att >= p.B * p.NH * p.T * p.T) { return; }
  // datt = dout · v, held in dpre_out until the softmax backward turns it into dpre.
  var dot = 0.0;
  for (var t2 = 0u; t2 <= r.t; t2++) {
    let v = at(r, t2) + 2u * p.C;
    var s = 0.0;
    for (var d = 0u; d < r.hs; d++) { s = fma(dout[r.out + d], qkv[v + d], s); }
    dpre_out[r.att + t2] = s;
    dot = fma(att[r.att + t2], s, dot);
  }
  for (var t2 = 0u; t2 <= r.t; t2++) {
    dpre_out[r.att + t2] = att[r.att + t2] * (dpre_out[r.att + t2] - dot) * p.scale;
  }
  for (var d = 0u; d < r.hs; d++) {
    var dq = 0.0;
    for (var t2 = 0u; t2 <= r.t; t2++) { dq = fma(dpre_out[r.att + t2], qkv[at(r, t2) + p.C + d], dq); }
    dqkv[r.q + d] += dq;
  }
}

// Here the invocation's t is the key position: it owns dk and dv of (b,h,t), summing over the
// query rows t' ≥ t of the same (b,h).
@compute @workgroup_size(WG)
fn column_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = row_of(wid, nwg, lid);
  if (r.att >= p.B * p.NH * p.T * p.T) { return; }
  let col = r.att - r.t * p.T + r.t; // att[b,h,t',t] = col + t'·T
  for (var d = 0u; d < r.hs; d++) {
    var dk = 0.0;
    var dv = 0.0;
    for (var t1 = r.t; t1 < p.T; t1++) {
      let a = col + t1 * p.T;
      let o = r.out - r.t * p.C + t1 * p.C;
      dk = fma(dpre[a], qkv[at(r, t1) + d], dk);
      dv = fma(att[a], dout[o + d], dv);
    }
    dqkv[r.q + p.C + d] += dk;
    dqkv[r.q + 2u * p.C + d] += dv;
  }
}
