// C[M,N] = A[M,K] · B[K,N], row-major f32.
//
// Designed for SIMD-across-invocations devices (lavapipe runs 8 invocations per AVX2 vector):
// the rows a workgroup computes come from workgroup_id, so every A load is uniform across the
// workgroup (a scalar load and a broadcast), while the invocations of a workgroup walk consecutive
// columns of B. Each invocation keeps RB rows × (4 or 1) columns of C in registers; shared memory
// and barriers, costly on a CPU rasteriser, are not used.

struct Params { M: u32, N: u32, K: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> C4: array<vec4f>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

override WG: u32 = 64;
// Rows per invocation; at most MAX_RB (private arrays need a constant size; the loops over RB
// unroll once the override is fixed, so the accumulators live in registers).
override RB: u32 = 8;
const MAX_RB: u32 = 16;

// N % 4 == 0: each invocation owns 4 adjacent columns.
@compute @workgroup_size(WG)
fn rows_vec4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n4 = p.N / 4u;
  let j = wid.x * WG + lid.x;
  let jc = min(j, n4 - 1u);
  let i0 = wid.y * RB;
  var acc: array<vec4f, MAX_RB>;
  for (var r = 0u; r < RB; r++) { acc[r] = vec4f(0.0); }
  for (var k = 0u; k < p.K; k++) {
    let b = B4[k * n4 + jc];
    for (var r = 0u; r < RB; r++) {
      let i = min(i0 + r, p.M - 1u);
      acc[r] = fma(vec4f(A[i * p.K + k]), b, acc[r]);
    }
  }
  if (j < n4) {
    for (var r = 0u; r < RB; r++) {
      if (i0 + r < p.M) { C4[(i0 + r) * n4 + j] = acc[r]; }
    }
  }
}

// Any N: one column per invocation.
@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let j = wid.x * WG + lid.x;
  let jc = min(j, p.N - 1u);
  let i0 = wid.y * RB;
  var acc: array<f32, MAX_RB>;
  for (var r = 0u; r < RB; r++) { acc[r] = 0.0; }
  for (var k = 0u; k < p.K; k++) {
    let b = B[k * p.N + jc];
    for (var r = 0u; r < RB; r++) {
      let i = min(i0 + r, p.M - 1u);
      acc[r] = fma(A[i * p.K + k], b, acc[r]);
    }
  }
  if (j < p.N) {
    for (var r = 0u; r < RB; r++) {
      if (i0 + r < p.M) { C[(i0 + r) * p.N + j] = acc[r]; }
    }
  }
}
