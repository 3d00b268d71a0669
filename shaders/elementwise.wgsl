// Elementwise ops over flat f32 arrays. The grid is 1-D, folded into y past 65535 workgroups.

struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// In-place variants bind their destination at 2 (an entry point uses one of y / dst).
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

// out = x + alpha * y
@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) { out[i] = fma(p.alpha, y[i], x[i]); }
}

// out = x * y
@compute @workgroup_size(WG)
fn mul(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) { out[i] = x[i] * y[i]; }
}

// dst = alpha * x
@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) { dst[i] = p.alpha * x[i]; }
}

// dst += alpha * x
@compute @workgroup_size(WG)
fn axpy(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) { dst[i] = fma(p.alpha, x[i], dst[i]); }
}

// dst = gelu(x)
@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) { dst[i] = gelu_tanh(x[i]); }
}

// out = y * gelu'(x), y the upstream gradient
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) { out[i] = gelu_grad(x[i]) * y[i]; }
}

// dst = relu(x). select, not max: max(NaN, 0) may give either operand, and a NaN must stay a NaN;
// -0 gives +0.
@compute @workgroup_size(WG)
fn relu(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) {
    let v = x[i];
    dst[i] = select(v, 0.0, v <= 0.0);
  }
}

// out = y where x > 0, 0 where x ≤ 0 (the subgradient at 0 is 0, as in PyTorch), NaN where x is NaN;
// x is relu's output (or its input: both are > 0 at the same places), y the upstream gradient.
@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) {
    let v = x[i];
    out[i] = select(select(v, 0.0, v <= 0.0), y[i], v > 0.0);
  }
}
