// The matmul family: C[b] = epilogue(alpha · op(A[b]) · op(B[b])), row-major f32.
//
// Operands are addressed through strides, so one kernel serves A·B, A·Bᵀ and Aᵀ·B and batches
// (a batch stride of 0 broadcasts a shared weight): A(b,i,k) = A[base(b) + i·sAi + k·sAk] and
// B(b,k,j) = B[base(b) + k·sBk + j·sBj]; C's rows have a stride too (unit columns), and the batch
// index may split in two (matmul-core.wgsl), so attention's heads are read and written in place.
//
// Split-K: workgroup z = batch·splits + s covers k in [s·kChunk, (s+1)·kChunk) and writes its raw
// partial sums to C laid out as [batch, splits, M, N]; `reduce_splits` then adds the partials in
// fixed order (deterministic: no atomics) and applies the epilogue.
//
// Epilogue: y = alpha·acc (+ bias[j]) (then gelu) (then + C_old when accumulating).
//
// Kernels: `regs` keeps an RB×4 block of C per invocation in registers and takes its rows from
// workgroup_id, so A loads are uniform across the workgroup; no shared memory (the CPU-rasteriser
// path). `tiled` stages TK×(TS·TM) tiles of A and B in workgroup memory (discrete GPUs' path).
// shaders/matmul-subgroups.wgsl holds the subgroup variant (it needs `enable subgroups`);
// matmul-core.wgsl the Params, bindings and epilogue both use.

// #include "matmul-core.wgsl"

// reduce_splits binds (partials, bias, C): its bias sits at binding 2.
@group(0) @binding(2) var<storage, read> reduceBias: array<f32>;

override WG: u32 = 64;
// Rows per invocation of `regs` (≤ MAX_RB; loops over RB unroll once the override is fixed).
override RB: u32 = 8;
const MAX_RB: u32 = 16;
// `tiled`: TS×TS invocations, each TM×TM outputs (TM ≤ MAX_TM); k staged TK at a time.
override TS: u32 = 16;
override TM: u32 = 4;
override TK: u32 = 16;
const MAX_TM: u32 = 4;

@compute @workgroup_size(WG)
fn regs(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let z = wid.z;
  let b = z / p.splits;
  let j0 = (wid.x * WG + lid.x) * 4u;
  let i0 = wid.y * RB;
  if (skipBlock(i0, RB, wid.x * WG * 4u)) { return; }
  let ks = kRange(z, i0, RB);
  // Clamped columns keep loads in bounds; their results are dropped by store().
  let bj = bBase(b) + vec4u(min(j0, p.N - 1u), min(j0 + 1u, p.N - 1u), min(j0 + 2u, p.N - 1u), min(j0 + 3u, p.N - 1u)) * p.sBj;
  var acc: array<vec4f, MAX_RB>;
  for (var r = 0u; r < RB; r++) { acc[r] = vec4f(0.0); }
  for (var k = ks.x; k < ks.y; k++) {
    let bk = bj + k * p.sBk;
    let bv = vec4f(f32(B[bk.x]), f32(B[bk.y]), f32(B[bk.z]), f32(B[bk.w]));
    for (var r = 0u; r < RB; r++) {
      let a = A[aBase(b) + min(i0 + r, p.M - 1u) * p.sAi + k * p.sAk];
      acc[r] = select(acc[r], fma(vec4f(a), bv, acc[r]), inTriangle(i0 + r, k));
    }
  }
  for (var r = 0u; r < RB; r++) {
    for (var c = 0u; c < 4u; c++) { store(z, i0 + r, j0 + c, acc[r][c]); }
  }
}

var<workgroup> tileA: array<f32, TK * TS * TM>;
var<workgroup> tileB: array<f32, TK * TS * TM>;

@compute @workgroup_size(TS, TS)
fn tiled(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let z = wid.z;
  let b = z / p.splits;
  let BT = TS * TM; // rows (and columns) of C per workgroup
  let i0 = wid.y * BT;
  let j0 = wid.x * BT;
  if (skipBlock(i0, BT, j0)) { return; }
  let ks = kRange(z, i0, BT);
  var acc: array<array<f32, MAX_TM>, MAX_TM>;
  for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
    // Cooperative loads, zero-padded past M, N and the k range so the inner loop needs no checks.
    for (var e = li; e < TK * BT; e += TS * TS) {
      let kk = e / BT;
      let x = e % BT;
      let k = k0 + kk;
      var av = 0.0;
      var bv = 0.0;
      if (k < ks.y && i0 + x < p.M) { av = A[aBase(b) + (i0 + x) * p.sAi + k * p.sAk]; }
      if (k < ks.y && j0 + x < p.N) { bv = f32(B[bBase(b) + k * p.sBk + (j0 + x) * p.sBj]); }
      tileA[e] = av;
      tileB[e] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var av: array<f32, MAX_TM>;
      var bv: array<f32, MAX_TM>;
      for (var t = 0u; t < TM; t++) {
        av[t] = tileA[kk * BT + lid.y + t * TS];
        bv[t] = tileB[kk * BT + lid.x + t * TS];
      }
      for (var r = 0u; r < TM; r++) {
        let live = inTriangle(i0 + lid.y + r * TS, k0 + kk);
        for (var c = 0u; c < TM; c++) { acc[r][c] = select(acc[r][c], fma(av[r], bv[c], acc[r][c]), live); }
      }
    }
    workgroupBarrier();
  }
  // Invocation (x, y) owns rows y + r·TS and columns x + c·TS: strided so tile reads don't conflict.
  for (var r = 0u; r < TM; r++) {
    for (var c = 0u; c < TM; c++) { store(z, i0 + lid.y + r * TS, j0 + lid.x + c * TS, acc[r][c]); }
  }
}

// Partials A = [batch, splits, M, N] → C(b,i,j), summed in split order.
@compute @workgroup_size(WG)
fn reduce_splits(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let e = flat(wid, nwg, lid);
  let mn = p.M * p.N;
  if (e >= mn * p.K) { return; } // K carries the batch count here
  let b = e / mn;
  let ij = e % mn;
  var s = 0.0;
  for (var q = 0u; q < p.splits; q++) { s += A[(b * p.splits + q) * mn + ij]; }
  let o = cAt(b, ij / p.N, ij % p.N);
  var old = 0.0;
  if ((p.flags & ACCUMULATE) != 0u) { old = C[o]; }
  var biasJ = 0.0;
  if ((p.flags & HAS_BIAS) != 0u) { biasJ = reduceBias[ij % p.N]; }
  C[o] = epilogue(s, biasJ, old);
}
