// Causal self-attention's softmax rows. The products around them (scores = q·kᵀ, out = att·v and
// the backward's four) run through the matmul kernel on strided views of GPT-2's fused qkv
// (src/ops/attention.ts); here only what is per row: one invocation per (b,h,t) row of the
// (B,NH,T,T) scores, columns t2 ≤ t live, the rest written zero (the products skip or multiply them).

struct Params { rows: u32, T: u32 }

@group(0) @binding(0) var<uniform> p: Params;
// softmax: scores in, probabilities out (in place)
@group(0) @binding(1) var<storage, read_write> att_io: array<f32>;
// softmax_backward: att, then d(att) in, d(scores) out (in place)
@group(0) @binding(1) var<storage, read> att: array<f32>;
@group(0) @binding(2) var<storage, read_write> datt: array<f32>;

override WG: u32 = 64;

// Max-subtracted. The same arithmetic as decode.wgsl's softmax (max, then Σ exp(s − m), then
// exp(s − m)·(1/Σ)), so a decode step reproduces the last row of this forward bit for bit.
@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = flat(wid, nwg, lid);
  if (r >= p.rows) { return; }
  let t = r % p.T;
  let row = r * p.T;
  var m = -F32_MAX;
  for (var j = row; j <= row + t; j++) { m = max(m, att_io[j]); }
  var sum = 0.0;
  for (var j = row; j <= row + t; j++) { sum += exp(att_io[j] - m); }
  let inv = 1.0 / sum;
  for (var j = row; j <= row + t; j++) { att_io[j] = exp(att_io[j] - m) * inv; }
  for (var j = row + t + 1u; j < row + p.T; j++) { att_io[j] = 0.0; }
}

// d(scores) = att ⊙ (d(att) − Σ_t2 att·d(att)) per row (the 1/√HD scale is the products' alpha).
@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = flat(wid, nwg, lid);
  if (r >= p.rows) { return; }
  let t = r % p.T;
  let row = r * p.T;
  var dot = 0.0;
  for (var j = row; j <= row + t; j++) { dot = fma(att[j], datt[j], dot); }
  for (var j = row; j <= row + t; j++) { datt[j] = att[j] * (datt[j] - dot); }
  for (var j = row + t + 1u; j < row + p.T; j++) { datt[j] = 0.0; }
}
