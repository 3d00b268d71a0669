// The subgroup variant of `regs` in matmul.wgsl (same Params, bindings, split-K and epilogue; kept
// in its own file because `enable subgroups` would stop the whole module compiling on adapters
// without the feature).
//
// Why it exists: lavapipe, inside any loop, loads storage memory lane by lane (a branch, a bounds
// check and a scalar load per lane and component) even when the address is uniform, so `regs`
// spends 8 loads per A element. Here each lane of a group of 8 loads a different row's A(i,k) and
// the rows are shared with subgroupShuffle, one load per lane instead of RB. Needs a subgroup size
// that is a multiple of 8 (the wrapper checks the adapter's minimum).
enable subgroups;

struct Params {
  M: u32, N: u32, K: u32,
  sAb: u32, sAi: u32, sAk: u32,
  sBb: u32, sBk: u32, sBj: u32,
  splits: u32, kChunk: u32,
  alpha: f32,
  flags: u32,
}

const HAS_BIAS: u32 = 1u;
const GELU: u32 = 2u;
const ACCUMULATE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

override WG: u32 = 64;
// Rows per invocation: 8 or 16 (lanes load rows t and t + 8 of the block).
override RB: u32 = 16;
const MAX_RB: u32 = 16;
const LANES: u32 = 8u;

fn gelu(x: f32) -> f32 {
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
  let e = exp(2.0 * u);
  return 0.5 * x * (1.0 + (e - 1.0) / (e + 1.0));
}

fn store(z: u32, i: u32, j: u32, v: f32) {
  if (i >= p.M || j >= p.N) { return; }
  let o = (z * p.M + i) * p.N + j;
  if (p.splits > 1u) { C[o] = v; return; }
  var y = p.alpha * v;
  if ((p.flags & HAS_BIAS) != 0u) { y += bias[j]; }
  if ((p.flags & GELU) != 0u) { y = gelu(y); }
  if ((p.flags & ACCUMULATE) != 0u) { y += C[o]; }
  C[o] = y;
}

@compute @workgroup_size(WG)
fn regs_subgroup(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let z = wid.z;
  let b = z / p.splits;
  let k0 = (z % p.splits) * p.kChunk;
  let k1 = min(p.K, k0 + p.kChunk);
  let j0 = (wid.x * WG + lid.x) * 4u;
  let i0 = wid.y * RB;
  let t = sl % LANES;
  let first = sl - t; // lane 0 of this lane's group of 8
  let a0 = b * p.sAb + min(i0 + t, p.M - 1u) * p.sAi;
  let a1 = b * p.sAb + min(i0 + LANES + t, p.M - 1u) * p.sAi;
  let bj = b * p.sBb + vec4u(min(j0, p.N - 1u), min(j0 + 1u, p.N - 1u), min(j0 + 2u, p.N - 1u), min(j0 + 3u, p.N - 1u)) * p.sBj;
  var acc: array<vec4f, MAX_RB>;
  for (var r = 0u; r < RB; r++) { acc[r] = vec4f(0.0); }
  for (var k = k0; k < k1; k++) {
    let bk = bj + k * p.sBk;
    let bv = vec4f(B[bk.x], B[bk.y], B[bk.z], B[bk.w]);
    let lo = A[a0 + k * p.sAk];
    var hi = 0.0;
    if (RB > LANES) { hi = A[a1 + k * p.sAk]; }
    for (var r = 0u; r < RB; r++) {
      let a = subgroupShuffle(select(hi, lo, r < LANES), first + r % LANES);
      acc[r] = fma(vec4f(a), bv, acc[r]);
    }
  }
  for (var r = 0u; r < RB; r++) {
    for (var c = 0u; c < 4u; c++) { store(z, i0 + r, j0 + c, acc[r][c]); }
  }
}
