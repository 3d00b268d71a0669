// LayerNorm over the last dim of an N×C matrix (llm.c semantics): forward saves mean and rstd;
// backward ACCUMULATES into dinp, dweight and dbias (+=), as llm.c does, so a residual stream's
// gradient can be summed in place.
//
// Rows are owned by one invocation each (forward, backward_input) and columns by one invocation
// each (backward_params, looping over the rows in order): no shared memory, no barriers, no atomics,
// and every sum has a fixed order, so results are the same bits on every run.

struct Params { N: u32, C: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
// forward
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
// backward_input: inp, weight, dout, mean, rstd, dinp
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dinp: array<f32>;
// backward_params: inp, dout_p, mean_p, rstd_p, dweight, dbias
@group(0) @binding(2) var<storage, read> dout_p: array<f32>;
@group(0) @binding(3) var<storage, read> mean_p: array<f32>;
@group(0) @binding(4) var<storage, read> rstd_p: array<f32>;
@group(0) @binding(5) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.N) { return; }
  let row = i * p.C;
  var m = 0.0;
  for (var c = 0u; c < p.C; c++) { m += inp[row + c]; }
  m /= f32(p.C);
  // Two passes (mean, then squared deviations) avoid the cancellation of E[x²] - E[x]².
  var v = 0.0;
  for (var c = 0u; c < p.C; c++) {
    let d = inp[row + c] - m;
    v = fma(d, d, v);
  }
  let s = inverseSqrt(v / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) {
    out[row + c] = fma((inp[row + c] - m) * s, weight[c], bias[c]);
  }
  mean_out[i] = m;
  rstd_out[i] = s;
}

@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.N) { return; }
  let row = i * p.C;
  let m = mean[i];
  let s = rstd[i];
  var dnorm_mean = 0.0;
  var dnorm_norm_mean = 0.0;
  for (var c = 0u; c < p.C; c++) {
    let dnorm = weight[c] * dout[row + c];
    dnorm_mean += dnorm;
    dnorm_norm_mean = fma(dnorm, (inp[row + c] - m) * s, dnorm_norm_mean);
  }
  dnorm_mean /= f32(p.C);
  dnorm_norm_mean /= f32(p.C);
  for (var c = 0u; c < p.C; c++) {
    let norm = (inp[row + c] - m) * s;
    dinp[row + c] += (weight[c] * dout[row + c] - dnorm_mean - norm * dnorm_norm_mean) * s;
  }
}

@compute @workgroup_size(WG)
fn backward_params(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = flat(wid, nwg, lid);
  if (c >= p.C) { return; }
  var dw = 0.0;
  var db = 0.0;
  for (var i = 0u; i < p.N; i++) {
    let d = dout_p[i * p.C + c];
    db += d;
    dw = fma((inp[i * p.C + c] - mean_p[i]) * rstd_p[i], d, dw);
  }
  dweight[c] += dw;
  dbias[c] += db;
}
