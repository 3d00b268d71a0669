// Row sums: out[base + r·step] = alpha · Σ_j f(x[r·len + j]) over j < len with r·len + j < n, where f is
// the identity or the square. One workgroup per row (grid folded past 65535): lanes sum strided
// slices in order, then a fixed tree adds the lanes. No atomics, so the bits depend only on the
// sizes. Whole-tensor sums run it twice (rows of fixed-size chunks, then one row of partials);
// per-group sums of several tensors write each tensor's G rows with step = the number of tensors,
// so that the second pass sums each group's row of partials.
// dot_rows is the same walk over x[r·len + j]·y[j]: a matrix-vector product with a long reduction.

struct Params { rows: u32, len: u32, n: u32, alpha: f32, square: u32, base: u32, step: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;

// A power of two (the tree halves it).
override WG: u32 = 256;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = folded_group(wid, nwg);
  if (r >= p.rows) { return; }
  let start = r * p.len;
  let end = min(start + p.len, p.n);
  var s = 0.0;
  for (var i = start + lid.x; i < end; i += WG) {
    let v = x[i];
    s += select(v, v * v, p.square != 0u);
  }
  let total = tree(lid.x, s);
  if (lid.x == 0u) { out[p.base + r * p.step] = p.alpha * total; }
}

@compute @workgroup_size(WG)
fn dot_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = folded_group(wid, nwg);
  if (r >= p.rows) { return; }
  let start = r * p.len;
  var s = 0.0;
  for (var j = lid.x; j < p.len; j += WG) { s = fma(x[start + j], y[j], s); }
  let total = tree(lid.x, s);
  if (lid.x == 0u) { out[p.base + r] = p.alpha * total; }
}

// Lane 0 gets the sum of every lane's s, added in a fixed tree.
fn tree(lane: u32, own: f32) -> f32 {
  var s = own;
  partial[lane] = s;
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lane < stride) {
      s += partial[lane + stride];
      partial[lane] = s;
    }
  }
  return s;
}
