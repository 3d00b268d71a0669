// The small kernels of the SEAL edit generator (src/seal/policy.ts) that no other op family covers:
// ReLU and its backward, and the Gaussian sample a = μ + exp(log σ)⊙ε. Flat 1-D grids, folded into
// y past 65535 workgroups. Every entry point uses only some of the bindings below; two variables
// share a binding number where entry points need different access modes there.

struct Params { n: u32, D: u32 }

@group(0) @binding(0) var<uniform> p: Params;
// relu: x → relu_out
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> relu_out: array<f32>;
// relu_backward: y, dy → dx  (y = relu(x) or x itself: both are > 0 at the same places)
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
// gaussian_sample: mu [n], log_std [D], noise [n] → action [n]
@group(0) @binding(1) var<storage, read> mu: array<f32>;
@group(0) @binding(2) var<storage, read> log_std: array<f32>;
@group(0) @binding(3) var<storage, read> noise: array<f32>;
@group(0) @binding(4) var<storage, read_write> action: array<f32>;

override WG: u32 = 256;

// select, not max: max(NaN, 0) may give either operand, and a NaN must stay a NaN; -0 gives +0.
@compute @workgroup_size(WG)
fn relu(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) {
    let v = x[i];
    relu_out[i] = select(v, 0.0, v <= 0.0);
  }
}

// dx = dy where y > 0, 0 where y ≤ 0 (the subgradient at 0 is 0, as in PyTorch), NaN where y is NaN.
@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) {
    let v = y[i];
    dx[i] = select(select(v, 0.0, v <= 0.0), dy[i], v > 0.0);
  }
}

@compute @workgroup_size(WG)
fn gaussian_sample(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) { action[i] = fma(exp(log_std[i % p.D]), noise[i], mu[i]); }
}
