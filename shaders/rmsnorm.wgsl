// RMSNorm over the last dim of an N×C matrix (Llama's): out = x·rstd·weight, rstd = 1/√(mean(x²)+eps).
// Forward saves rstd; backward ACCUMULATES into dinp and dweight (+=), so the residual stream's
// gradient sums in place. Rows are owned by one invocation each (forward, backward_input), columns
// by one invocation each (backward_params, rows in order): fixed summation order, no atomics.

struct Params { N: u32, C: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
// forward: inp, weight, rstd_out, out
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// backward_input: inp, weight, dout, rstd, dinp
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dinp: array<f32>;
// backward_params: inp, dout_p, rstd_p, dweight
@group(0) @binding(2) var<storage, read> dout_p: array<f32>;
@group(0) @binding(3) var<storage, read> rstd_p: array<f32>;
@group(0) @binding(4) var<storage, read_write> dweight: array<f32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.N) { return; }
  let row = i * p.C;
  var ss = 0.0;
  for (var c = 0u; c < p.C; c++) { ss = fma(inp[row + c], inp[row + c], ss); }
  let s = inverseSqrt(ss / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) { out[row + c] = inp[row + c] * s * weight[c]; }
  rstd_out[i] = s;
}

// dinp = (w·dout − norm·mean(w·dout·norm))·rstd, norm = x·rstd.
@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.N) { return; }
  let row = i * p.C;
  let s = rstd[i];
  var dot = 0.0;
  for (var c = 0u; c < p.C; c++) { dot = fma(weight[c] * dout[row + c], inp[row + c] * s, dot); }
  dot /= f32(p.C);
  for (var c = 0u; c < p.C; c++) {
    dinp[row + c] += (weight[c] * dout[row + c] - inp[row + c] * s * dot) * s;
  }
}

@compute @workgroup_size(WG)
fn backward_params(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = flat(wid, nwg, lid);
  if (c >= p.C) { return; }
  var dw = 0.0;
  for (var i = 0u; i < p.N; i++) { dw = fma(inp[i * p.C + c] * rstd_p[i], dout_p[i * p.C + c], dw); }
  dweight[c] += dw;
}
