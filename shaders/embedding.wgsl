// Token + position embedding: out[i,c] = wte[tokens[i],c] + wpe[i % T,c] over N = B·T positions.
// A token id ≥ V gives NaN in its out row (the kernel cannot throw; NaN reaches the loss instead of
// a silently wrong row), and adds nothing to dwte.
//
// Backward ACCUMULATES (+=) into dwte and dwpe, deterministically and without atomics:
// - link: one invocation per position finds the next position with the same token and whether
//   it is the token's first occurrence (O(N²) scalar work in all, tiny next to the rest).
// - wte_backward: a workgroup per (channel chunk, position). Only a token's first occurrence does
//   work: it walks the token's chain of positions in order, summing dout (O(N·C) in all). Chain
//   loads come from workgroup-uniform addresses: cheap on lavapipe.
// - wpe_backward: one invocation per (t, c), summing over the batch in order.
//
// wte / dwte may be bound in chunks of rows [v0, v1) (a table over the storage-binding limit,
// src/ops/chunks.ts): a dispatch touches only positions whose token it holds, at row tok - v0.
// Unsplit, v0 = 0 and v1 = V.

struct Params { N: u32, T: u32, C: u32, V: u32, v0: u32, v1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
// forward: tokens, wte, wpe, out (the tables stored f32 or f16, src/gpu/kernel.ts)
// #storage-type wte_t
// #storage-type wpe_t
@group(0) @binding(2) var<storage, read> wte: array<wte_t>;
@group(0) @binding(3) var<storage, read> wpe: array<wpe_t>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// link: tokens, links_out (next position with the same token, or N; 1 if first occurrence)
@group(0) @binding(2) var<storage, read_write> links_out: array<vec2u>;
// wte_backward: tokens, links, dout, dwte
@group(0) @binding(2) var<storage, read> links: array<vec2u>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dwte: array<f32>;
// wpe_backward: dout_pos, dwpe
@group(0) @binding(1) var<storage, read> dout_pos: array<f32>;
@group(0) @binding(2) var<storage, read_write> dwpe: array<f32>;

override WG: u32 = 64;
// Runtime (not constant) NaN bits: WGSL rejects a NaN constant expression.
var<private> NAN_BITS: u32 = 0x7fc00000u;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= p.N * p.C) { return; }
  let i = k / p.C;
  let c = k % p.C;
  let tok = tokens[i];
  if (tok >= p.V) {
    if (p.v0 == 0u) { out[k] = bitcast<f32>(NAN_BITS); }
    return;
  }
  if (tok < p.v0 || tok >= p.v1) { return; }
  out[k] = f32(wte[(tok - p.v0) * p.C + c]) + f32(wpe[(i % p.T) * p.C + c]);
}

@compute @workgroup_size(WG)
fn link(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.N) { return; }
  let tok = tokens[i];
  var next = p.N;
  for (var j = i + 1u; j < p.N; j++) {
    if (tokens[j] == tok) { next = j; break; }
  }
  var first = 1u;
  for (var j = 0u; j < i; j++) {
    if (tokens[j] == tok) { first = 0u; break; }
  }
  links_out[i] = vec2u(next, first);
}

// Grid: x = channel chunk of WG, y·z = position (z folds positions past the y limit).
@compute @workgroup_size(WG)
fn wte_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = wid.z * nwg.y + wid.y;
  let c = wid.x * WG + lid.x;
  if (i >= p.N || c >= p.C || links[i].y == 0u) { return; }
  let tok = tokens[i];
  if (tok < p.v0 || tok >= p.v1) { return; }
  var acc = 0.0;
  for (var j = i; j < p.N; j = links[j].x) { acc += dout[j * p.C + c]; }
  dwte[(tok - p.v0) * p.C + c] += acc;
}

@compute @workgroup_size(WG)
fn wpe_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= p.T * p.C) { return; }
  var acc = 0.0;
  for (var i = k / p.C; i < p.N; i += p.T) { acc += dout_pos[i * p.C + k % p.C]; }
  dwpe[k] += acc;
}
