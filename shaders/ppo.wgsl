// Kernels for a diagonal Gaussian policy N(mu, exp(log_std)²) with a state-independent log_std:
// sampling (PPO's and ReST-EM's), log-probabilities; PPO's clipped surrogate with entropy bonus, approximate KL and clip fraction;
// its gradient wrt mu and log_std; advantage normalisation. Every sum runs in a
// fixed order (serially per lane, then a fixed tree), so the bits never depend on scheduling.

struct PpoParams { B: u32, D: u32, clip: f32, ent_coef: f32 }
struct GroupParams { groups: u32, size: u32 }
struct SampleParams { n: u32, D: u32 }

@group(0) @binding(0) var<uniform> pp: PpoParams;
@group(0) @binding(0) var<uniform> gp: GroupParams;
@group(0) @binding(0) var<uniform> sp: SampleParams;

// logprob, grad_mu, grad_log_std (surrogate shares log_std and adv)
@group(0) @binding(1) var<storage, read> mu: array<f32>;
@group(0) @binding(2) var<storage, read> log_std: array<f32>;
@group(0) @binding(3) var<storage, read> actions: array<f32>;
@group(0) @binding(4) var<storage, read_write> logp_out: array<f32>;
@group(0) @binding(4) var<storage, read> ratio: array<f32>;
@group(0) @binding(5) var<storage, read> adv: array<f32>;
// d_mu (grad_mu), d_log_std (grad_log_std) or the stats (surrogate)
@group(0) @binding(6) var<storage, read_write> result: array<f32>;
// surrogate
@group(0) @binding(1) var<storage, read> logp: array<f32>;
@group(0) @binding(3) var<storage, read> logp_old: array<f32>;
@group(0) @binding(4) var<storage, read_write> ratio_out: array<f32>;
// normalize_groups
@group(0) @binding(1) var<storage, read> adv_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> adv_out: array<f32>;
// gaussian_sample: mu [n], log_std [D], noise [n] → sample_out [n]
@group(0) @binding(3) var<storage, read> noise: array<f32>;
@group(0) @binding(4) var<storage, read_write> sample_out: array<f32>;

const HALF_LOG_2PI: f32 = 0.91893853320467274;
const HALF_LOG_2PI_E: f32 = 1.41893853320467274;

// Must be a power of two (tree reduction).
override WG: u32 = 64;

var<workgroup> scratch: array<vec4f, WG>;

// Sum over the workgroup in a fixed pairwise tree (four sums at once); every invocation must call it.
fn tree_sum(lid: u32, x: vec4f) -> vec4f {
  scratch[lid] = x;
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    workgroupBarrier();
    if (lid < s) { scratch[lid] += scratch[lid + s]; }
  }
  workgroupBarrier();
  return scratch[0];
}

// log N(actions[b] | mu[b], sigma²) summed over D; one workgroup per sample.
@compute @workgroup_size(WG)
fn logprob(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wid.y * nwg.x + wid.x;
  if (b >= pp.B) { return; }
  var acc = vec4f(0.0);
  for (var d = lid.x; d < pp.D; d += WG) {
    let z = (actions[b * pp.D + d] - mu[b * pp.D + d]) * exp(-log_std[d]);
    acc.x = fma(z, z, acc.x);
    acc.y += log_std[d];
  }
  let s = tree_sum(lid.x, acc);
  if (lid.x == 0u) { logp_out[b] = -0.5 * s.x - s.y - f32(pp.D) * HALF_LOG_2PI; }
}

// min and clamp by comparisons, so that a NaN ratio or advantage stays NaN (WGSL's min/clamp may drop it).
fn clipped(r: f32) -> f32 {
  let lo = 1.0 - pp.clip;
  let hi = 1.0 + pp.clip;
  return select(select(r, hi, r > hi), lo, r < lo);
}

fn objective(r: f32, a: f32) -> f32 {
  let s1 = r * a;
  let s2 = clipped(r) * a;
  return select(s1, s2, s2 < s1);
}

// d min(r a, clamp(r, 1-clip, 1+clip) a) / dr with PyTorch's subgradients: torch.minimum sends the
// whole gradient to the smaller operand and half to each on a tie; clamp passes it for
// 1-clip <= r <= 1+clip (edges included). So exactly at an edge the gradient is the unclipped a.
fn dobjective_dratio(r: f32, a: f32) -> f32 {
  let s1 = r * a;
  let s2 = clipped(r) * a;
  let through_clamp = select(0.0, a, r >= 1.0 - pp.clip && r <= 1.0 + pp.clip);
  if (s1 < s2) { return a; }
  if (s1 > s2) { return through_clamp; }
  return 0.5 * a + 0.5 * through_clamp;
}

// d loss / d logp_new[b], with loss = -mean_b objective and r = exp(logp_new - logp_old).
fn dloss_dlogp(b: u32) -> f32 {
  let r = ratio[b];
  return -dobjective_dratio(r, adv[b]) * r / f32(pp.B);
}

// One workgroup: ratio_out[b] = r_b, and result = [loss, policy loss, entropy, approx KL, clip fraction]
// with loss = policy loss - ent_coef * entropy.
@compute @workgroup_size(WG)
fn surrogate(@builtin(local_invocation_id) lid: vec3u) {
  var acc = vec4f(0.0);
  for (var b = lid.x; b < pp.B; b += WG) {
    let log_r = logp[b] - logp_old[b];
    let r = exp(log_r);
    ratio_out[b] = r;
    acc.x += objective(r, adv[b]);
    acc.y += (r - 1.0) - log_r;
    acc.z += select(0.0, 1.0, abs(r - 1.0) > pp.clip);
  }
  for (var d = lid.x; d < pp.D; d += WG) { acc.w += log_std[d]; }
  let s = tree_sum(lid.x, acc);
  if (lid.x == 0u) {
    let n = f32(pp.B);
    let entropy = s.w + f32(pp.D) * HALF_LOG_2PI_E;
    let policy = -s.x / n;
    result[0] = policy - pp.ent_coef * entropy;
    result[1] = policy;
    result[2] = entropy;
    result[3] = s.y / n;
    result[4] = s.z / n;
  }
}

// d_mu[b, d] = dloss/dlogp[b] · (a - mu) / sigma². One sample per workgroup row: its factor is uniform.
@compute @workgroup_size(WG)
fn grad_mu(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wid.y;
  let d = wid.x * WG + lid.x;
  if (d >= pp.D) { return; }
  let i = b * pp.D + d;
  result[i] = dloss_dlogp(b) * (actions[i] - mu[i]) * exp(-2.0 * log_std[d]);
}

// d_log_std[d] = Σ_b dloss/dlogp[b] · (z² - 1) - ent_coef, summed over b in order by one invocation.
@compute @workgroup_size(WG)
fn grad_log_std(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let d = flat(wid, nwg, lid);
  if (d >= pp.D) { return; }
  let inv_std = exp(-log_std[d]);
  var s = 0.0;
  for (var b = 0u; b < pp.B; b++) {
    let z = (actions[b * pp.D + d] - mu[b * pp.D + d]) * inv_std;
    s = fma(dloss_dlogp(b), z * z - 1.0, s);
  }
  result[d] = s - pp.ent_coef;
}

// Each group of `size` consecutive advantages: (x - mean) / (std + 1e-8), std with Bessel's
// correction as torch.std; a group of one has std 0 and so gives 0. One invocation per group.
@compute @workgroup_size(WG)
fn normalize_groups(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = flat(wid, nwg, lid);
  if (g >= gp.groups) { return; }
  let first = g * gp.size;
  var sum = 0.0;
  for (var i = 0u; i < gp.size; i++) { sum += adv_in[first + i]; }
  let mean = sum / f32(gp.size);
  var sq = 0.0;
  for (var i = 0u; i < gp.size; i++) {
    let e = adv_in[first + i] - mean;
    sq = fma(e, e, sq);
  }
  let inv = 1.0 / (sqrt(sq / f32(max(gp.size, 2u) - 1u)) + 1e-8);
  for (var i = 0u; i < gp.size; i++) { adv_out[first + i] = (adv_in[first + i] - mean) * inv; }
}

// sample_out = mu + exp(log_std) ⊙ noise, log_std broadcast over rows; flat 1-D grid.
@compute @workgroup_size(WG)
fn gaussian_sample(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < sp.n) { sample_out[i] = fma(exp(log_std[i % sp.D]), noise[i], mu[i]); }
}
