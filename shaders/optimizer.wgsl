// Optimiser kernels: AdamW in place, and the deterministic sum of squares behind global-norm
// gradient clipping. No atomics: every sum has a fixed shape (fixed chunks per workgroup, then a
// fixed tree), so the result has the same bits on every run.

struct AdamParams { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, bc1: f32, bc2: f32 }
struct SpanParams { offset: u32, n: u32, first: u32 }
struct ReduceParams { count: u32, scale: f32, root: u32 }
struct ClipParams { n: u32, max_norm: f32 }

@group(0) @binding(0) var<uniform> adam: AdamParams;
@group(0) @binding(0) var<uniform> span: SpanParams;
@group(0) @binding(0) var<uniform> red: ReduceParams;
@group(0) @binding(0) var<uniform> clip: ClipParams;

// adamw
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
// sumsq_partials, reduce_sum and clip_scale read `src` and write `dst`.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// Must be a power of two (tree reduction).
override WG: u32 = 256;
// Elements each invocation sums serially: a workgroup's chunk is WG * ITEMS.
override ITEMS: u32 = 16;

var<workgroup> scratch: array<f32, WG>;

fn flat(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// Sum over the workgroup in a fixed pairwise tree; every invocation must call it.
fn tree_sum(lid: u32, x: f32) -> f32 {
  scratch[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { scratch[lid] += scratch[lid + s]; }
    workgroupBarrier();
  }
  return scratch[0];
}

// llm.c's AdamW: m, v moments, bias correction (bc = 1 - beta^t from the host), decoupled decay.
@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= adam.n) { return; }
  let g = grad[i];
  let mi = adam.beta1 * m[i] + (1.0 - adam.beta1) * g;
  let vi = adam.beta2 * v[i] + (1.0 - adam.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let w = param[i];
  param[i] = w - adam.lr * ((mi / adam.bc1) / (sqrt(vi / adam.bc2) + adam.eps) + adam.weight_decay * w);
}

// dst[first + c] = sum of squares of chunk c of src[offset .. offset + n).
@compute @workgroup_size(WG)
fn sumsq_partials(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let chunk = wid.y * nwg.x + wid.x;
  if (chunk * WG * ITEMS >= span.n) { return; }
  let begin = chunk * WG * ITEMS;
  var acc = 0.0;
  for (var k = 0u; k < ITEMS; k++) {
    let i = begin + k * WG + lid.x;
    if (i < span.n) {
      let x = src[span.offset + i];
      acc = fma(x, x, acc);
    }
  }
  let total = tree_sum(lid.x, acc);
  if (lid.x == 0u) { dst[span.first + chunk] = total; }
}

// dst[0] = scale * sum(src[0 .. count)), or its square root. One workgroup: for short vectors.
@compute @workgroup_size(WG)
fn reduce_sum(@builtin(local_invocation_id) lid: vec3u) {
  var acc = 0.0;
  for (var i = lid.x; i < red.count; i += WG) { acc += src[i]; }
  let total = red.scale * tree_sum(lid.x, acc);
  if (lid.x == 0u) { dst[0] = select(total, sqrt(total), red.root != 0u); }
}

// dst *= min(1, max_norm / (norm + 1e-6)) with norm = src[0], as torch.nn.utils.clip_grad_norm_.
// A NaN norm gives NaN gradients (like torch.clamp), so the min is a select, not min().
@compute @workgroup_size(WG)
fn clip_scale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= clip.n) { return; }
  let c = clip.max_norm / (src[0] + 1e-6);
  dst[i] *= select(c, 1.0, c > 1.0);
}
