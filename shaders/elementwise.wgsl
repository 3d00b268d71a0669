// Elementwise ops over flat f32 arrays. The grid is 1-D, folded into y past 65535 workgroups.

struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// In-place variants bind their destination at 2 (an entry point uses one of y / dst).
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

fn flat(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

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

// GPT-2's GELU, tanh form: 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³). Written as
// x·σ(2u), and sech²(u) from exp(-2|u|): the same function, but without the f32 cancellation of
// 1 ± tanh(u) in the tails (and without tanh, which some drivers compute through overflowing exps).
const GELU_SCALE: f32 = 0.7978845608028654; // √(2/π)
const GELU_CUBE: f32 = 0.044715;

fn gelu_u(v: f32) -> f32 {
  return GELU_SCALE * fma(GELU_CUBE * v, v * v, v);
}

// dst = gelu(x)
@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) {
    let v = x[i];
    dst[i] = v / (1.0 + exp(-2.0 * gelu_u(v)));
  }
}

// out = y * gelu'(x), y the upstream gradient
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < p.n) {
    let v = x[i];
    let u = gelu_u(v);
    let e = exp(-2.0 * abs(u));
    let sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e));
    let local = 1.0 / (1.0 + exp(-2.0 * u)) + 0.5 * v * sech2 * GELU_SCALE * fma(3.0 * GELU_CUBE, v * v, 1.0);
    out[i] = local * y[i];
  }
}
