// Cross-entropy fused with softmax over the vocabulary, for N rows of V logits.
//
// forward: one workgroup per row. Each lane keeps an online (max, sum of exp(x - max)) over its
// strided slice of the row, then a fixed tree combines the lanes: one pass over the logits,
// max-subtracted, deterministic, any V. It saves lse = logsumexp(row), so backward is elementwise.
// Target IGNORE gives loss 0 and zero gradient; a target ≥ V (not IGNORE) gives NaN.
// mean: one workgroup: the mean loss over rows with a target, and its gradient per row (1/count).
// backward (elementwise) ACCUMULATES (+=) dlogits = (softmax - onehot)·dloss, as llm.c does.
// Logits over the storage-binding limit come in chunks of N rows (src/ops/chunks.ts): logits and
// dlogits are bound from the chunk's first row, the per-row arrays whole, read at row0 + row.

struct Params { N: u32, V: u32, row0: u32 }

const IGNORE = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
// forward: logits, targets, losses_out, lse_out
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> losses_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse_out: array<f32>;
// backward: logits, targets, lse, dlosses, dlogits
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> dlosses: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;
// mean: losses, targets, mean_out, dlosses_out
@group(0) @binding(1) var<storage, read> losses: array<f32>;
@group(0) @binding(3) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlosses_out: array<f32>;

// A power of two (the tree halves it).
override WG: u32 = 256;

var<workgroup> wmax: array<f32, WG>;
var<workgroup> wsum: array<f32, WG>;
var<workgroup> wcount: array<u32, WG>;
// Runtime (not constant) NaN bits: WGSL rejects a NaN constant expression.
var<private> NAN_BITS: u32 = 0x7fc00000u;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = folded_group(wid, nwg);
  if (row >= p.N) { return; }
  let base = row * p.V;
  var m = -F32_MAX;
  var s = 0.0;
  for (var j = lid.x; j < p.V; j += WG) {
    let x = logits[base + j];
    // A NaN logit fails the comparison and turns s into NaN.
    if (x > m) {
      s = fma(s, exp(m - x), 1.0);
      m = x;
    } else {
      s += exp(x - m);
    }
  }
  wmax[lid.x] = m;
  wsum[lid.x] = s;
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lid.x < stride) {
      let m2 = wmax[lid.x + stride];
      let mm = max(m, m2);
      s = s * exp(m - mm) + wsum[lid.x + stride] * exp(m2 - mm);
      m = mm;
      wmax[lid.x] = m;
      wsum[lid.x] = s;
    }
  }
  if (lid.x == 0u) {
    let l = m + log(s);
    let t = targets[p.row0 + row];
    var loss = 0.0;
    if (t != IGNORE) { loss = select(bitcast<f32>(NAN_BITS), l - logits[base + min(t, p.V - 1u)], t < p.V); }
    lse_out[p.row0 + row] = l;
    losses_out[p.row0 + row] = loss;
  }
}

// Grid: x = column chunk of WG, y·z = row (z folds rows past the y limit), so a workgroup's
// target, lse and dloss loads are uniform (cheap on lavapipe) and no index needs a division.
@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.z * nwg.y + wid.y;
  let j = wid.x * WG + lid.x;
  if (row >= p.N || j >= p.V) { return; }
  let t = targets[p.row0 + row];
  if (t == IGNORE) { return; }
  let k = row * p.V + j;
  let prob = exp(logits[k] - lse[p.row0 + row]);
  let g = (prob - select(0.0, 1.0, j == t)) * dlosses[p.row0 + row];
  dlogits[k] += select(bitcast<f32>(NAN_BITS), g, t < p.V);
}

@compute @workgroup_size(WG)
fn mean(@builtin(local_invocation_id) lid: vec3u) {
  var s = 0.0;
  var c = 0u;
  for (var i = lid.x; i < p.N; i += WG) {
    if (targets[i] != IGNORE) {
      s += losses[i];
      c += 1u;
    }
  }
  wsum[lid.x] = s;
  wcount[lid.x] = c;
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lid.x < stride) {
      s += wsum[lid.x + stride];
      c += wcount[lid.x + stride];
      wsum[lid.x] = s;
      wcount[lid.x] = c;
    }
  }
  workgroupBarrier();
  let count = wcount[0];
  // No row with a target: mean 0 and no gradient, so an all-padding batch trains nothing.
  let inv = select(0.0, 1.0 / f32(count), count > 0u);
  if (lid.x == 0u) { mean_out[0] = wsum[0] * inv; }
  for (var i = lid.x; i < p.N; i += WG) {
    dlosses_out[i] = select(0.0, inv, targets[i] != IGNORE);
  }
}
