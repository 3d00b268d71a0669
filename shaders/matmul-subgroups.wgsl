// The subgroup variant of `regs` in matmul.wgsl (same Params, bindings, split-K and epilogue, from
// matmul-core.wgsl; kept in its own file because `enable subgroups` would stop the whole module
// compiling on adapters without the feature).
//
// Why it exists: lavapipe, inside any loop, loads storage memory lane by lane (a branch, a bounds
// check and a scalar load per lane and component) even when the address is uniform, so `regs`
// spends 8 loads per A element. Here each lane of a group of 8 loads a different row's A(i,k) and
// the rows are shared with subgroupShuffle: RB/8 loads per lane instead of RB. Needs a subgroup size
// that is a multiple of 8 (the wrapper checks the adapter's minimum).
enable subgroups;

// #include "matmul-core.wgsl"

override WG: u32 = 64;
// Rows per invocation, a multiple of 8 up to MAX_RB: lane t loads rows t, t + 8, … of the block.
// 32 rows (128 accumulator floats per lane; some spill) beat 16 on lavapipe, 64 spill too much.
override RB: u32 = 16;
const MAX_RB: u32 = 32;
const LANES: u32 = 8u;

@compute @workgroup_size(WG)
fn regs_subgroup(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let z = wid.z;
  let b = z / p.splits;
  let j0 = (wid.x * WG + lid.x) * 4u;
  let i0 = wid.y * RB;
  if (skipBlock(i0, RB, wid.x * WG * 4u)) { return; }
  let ks = kRange(z, i0, RB);
  let t = sl % LANES;
  let first = sl - t; // lane 0 of this lane's group of 8
  var arow: array<u32, MAX_RB / LANES>;
  for (var g = 0u; g < RB / LANES; g++) { arow[g] = aBase(b) + min(i0 + g * LANES + t, p.M - 1u) * p.sAi; }
  let bj = bBase(b) + vec4u(min(j0, p.N - 1u), min(j0 + 1u, p.N - 1u), min(j0 + 2u, p.N - 1u), min(j0 + 3u, p.N - 1u)) * p.sBj;
  var acc: array<vec4f, MAX_RB>;
  for (var r = 0u; r < RB; r++) { acc[r] = vec4f(0.0); }
  for (var k = ks.x; k < ks.y; k++) {
    let bk = bj + k * p.sBk;
    let bv = vec4f(f32(B[bk.x]), f32(B[bk.y]), f32(B[bk.z]), f32(B[bk.w]));
    var av: array<f32, MAX_RB / LANES>;
    for (var g = 0u; g < RB / LANES; g++) { av[g] = A[arow[g] + k * p.sAk]; }
    for (var r = 0u; r < RB; r++) {
      let a = subgroupShuffle(av[r / LANES], first + r % LANES);
      acc[r] = select(acc[r], fma(vec4f(a), bv, acc[r]), inTriangle(i0 + r, k));
    }
  }
  for (var r = 0u; r < RB; r++) {
    for (var c = 0u; c < 4u; c++) { store(z, i0 + r, j0 + c, acc[r][c]); }
  }
}
