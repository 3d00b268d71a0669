// Optimiser kernels: AdamW in place, and the pieces of global-norm gradient clipping that follow the
// deterministic sum of squares (reduce.wgsl): the square root, and the scaling, which reads the
// norm from a tensor so that the host never waits for it. Per-group clipping (G stacked adapters)
// has G norms: element i of a gradient is scaled by norm[(base + i) / seg].

struct AdamParams { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, bc1: f32, bc2: f32 }
struct ClipParams { n: u32, max_norm: f32, base: u32, seg: u32 }

@group(0) @binding(0) var<uniform> adam: AdamParams;
@group(0) @binding(0) var<uniform> clip: ClipParams;

// adamw
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
// sqrt_each and clip_scale read `src` and write `dst`.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

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

// dst[i] = sqrt(src[i]) for i < n: norms from sums of squares.
@compute @workgroup_size(WG)
fn sqrt_each(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= clip.n) { return; }
  dst[i] = sqrt(src[i]);
}

// dst *= min(1, max_norm / (norm + 1e-6)) with norm = src[(base + i) / seg], as torch.nn.utils.clip_grad_norm_.
// A NaN norm gives NaN gradients (like torch.clamp), so the min is a select, not min().
@compute @workgroup_size(WG)
fn clip_scale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= clip.n) { return; }
  let c = clip.max_norm / (src[(clip.base + i) / clip.seg] + 1e-6);
  dst[i] *= select(c, 1.0, c > 1.0);
}
