// Edit kernels. A dense edit scatters a packed delta into a masked block of a tensor; its gradient
// gathers back from the same block. A low-rank edit adds alpha·U·Vᵀ to a matrix, U (m×r) and V (n×r)
// read from one packed factor vector. Every output element is owned by one invocation (no atomics).
// The gradients add into the action gradient they are given (docs/ARCHITECTURE.md).

// A mask block: element k sits at start + (k / run) * stride + k % run, and at offset + k in the
// packed vector (see MaskBlock in src/ops/edit.ts).
struct BlockParams { start: u32, run: u32, stride: u32, count: u32, offset: u32, alpha: f32 }
// U is factors[offset ..][m×r], V follows it: factors[offset + m*r ..][n×r].
struct LowRankParams { m: u32, n: u32, r: u32, offset: u32, alpha: f32 }

@group(0) @binding(0) var<uniform> blk: BlockParams;
@group(0) @binding(0) var<uniform> lr: LowRankParams;

// The packed delta or factors, or dW' for gather.
@group(0) @binding(1) var<storage, read> src: array<f32>;
// The edited copy (scatter_add, lowrank_add) or the packed gradient (gather).
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// Gradients of a low-rank edit: dW' in, packed dU, dV out.
@group(0) @binding(2) var<storage, read> dw: array<f32>;
@group(0) @binding(3) var<storage, read_write> dfactors: array<f32>;

override WG: u32 = 64;

fn masked_index(k: u32) -> u32 {
  return blk.start + (k / blk.run) * blk.stride + k % blk.run;
}

// dst[mask[k]] += alpha * src[offset + k]
@compute @workgroup_size(WG)
fn scatter_add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= blk.count) { return; }
  let i = masked_index(k);
  dst[i] = dst[i] + blk.alpha * src[blk.offset + k];
}

// dst[offset + k] += alpha * src[mask[k]]: the gradient of a dense edit wrt its packed delta.
@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= blk.count) { return; }
  let o = blk.offset + k;
  dst[o] = dst[o] + blk.alpha * src[masked_index(k)];
}

fn u_at(i: u32, k: u32) -> f32 { return src[lr.offset + i * lr.r + k]; }
fn v_at(j: u32, k: u32) -> f32 { return src[lr.offset + lr.m * lr.r + j * lr.r + k]; }

// dst[i, j] += alpha * Σ_k U[i, k] V[j, k]. Each invocation does four rows of one column, so one
// load of V[j, k] (strided across lanes) serves four rows; U's loads are uniform in the workgroup.
@compute @workgroup_size(WG)
fn lowrank_add(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let j = wid.x * WG + lid.x;
  if (j >= lr.n) { return; }
  let i0 = wid.y * 4u;
  // Rows past the end repeat the last row; their results are not stored.
  let rows = min(vec4u(i0, i0 + 1u, i0 + 2u, i0 + 3u), vec4u(lr.m - 1u));
  var s = vec4f(0.0);
  for (var k = 0u; k < lr.r; k++) {
    let u = vec4f(u_at(rows.x, k), u_at(rows.y, k), u_at(rows.z, k), u_at(rows.w, k));
    s = fma(u, vec4f(v_at(j, k)), s);
  }
  for (var q = 0u; q < 4u && i0 + q < lr.m; q++) {
    let at = (i0 + q) * lr.n + j;
    dst[at] = dst[at] + lr.alpha * s[q];
  }
}

// dU[i, k] += alpha * Σ_j dW'[i, j] V[j, k]. One k per workgroup row, so V's loads are uniform.
@compute @workgroup_size(WG)
fn lowrank_grad_u(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = wid.y;
  let i = wid.x * WG + lid.x;
  if (i >= lr.m) { return; }
  var s = 0.0;
  for (var j = 0u; j < lr.n; j++) { s = fma(dw[i * lr.n + j], v_at(j, k), s); }
  let o = lr.offset + i * lr.r + k;
  dfactors[o] = dfactors[o] + lr.alpha * s;
}

// dV[j, k] += alpha * Σ_i dW'[i, j] U[i, k]; lanes read consecutive columns of dW'.
@compute @workgroup_size(WG)
fn lowrank_grad_v(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = wid.y;
  let j = wid.x * WG + lid.x;
  if (j >= lr.n) { return; }
  var s = 0.0;
  for (var i = 0u; i < lr.m; i++) { s = fma(dw[i * lr.n + j], u_at(i, k), s); }
  let o = lr.offset + lr.m * lr.r + j * lr.r + k;
  dfactors[o] = dfactors[o] + lr.alpha * s;
}

// combine: G edited copies of a tensor in one dispatch, each base + Σ_r coefs[g, r]·dirs[r] inside
// one mask block. The sum runs in r order with a rounding per term, as applying the R directions
// one after another does, so the copies carry the same bits as that. No branch and a loop over an
// override (unrolled): lavapipe loads storage lane by lane inside control flow.
struct CombineParams { size: u32, start: u32, run: u32, stride: u32, runs: u32, copies: u32, first: u32 }
@group(0) @binding(0) var<uniform> cb: CombineParams;
// #storage-type w_t
@group(0) @binding(1) var<storage, read> base: array<w_t>;
// [ROWS, run·runs]: the directions, packed like the block.
@group(0) @binding(2) var<storage, read> dirs: array<f32>;
// [copies, ROWS]
@group(0) @binding(3) var<storage, read> coefs: array<f32>;
// [N, size]: copies first .. first + copies − 1 are written.
@group(0) @binding(4) var<storage, read_write> copies: array<f32>;

// Directions per copy.
override ROWS: u32 = 1;

@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let e = flat(wid, nwg, lid);
  if (e >= cb.copies * cb.size) { return; }
  let g = e / cb.size;
  let i = e - g * cb.size;
  // i's place in the block, if it is in it (i < start wraps to a large offset: outside).
  let o = i - cb.start;
  let q = o / cb.stride;
  let c = o - q * cb.stride;
  let inside = i >= cb.start && q < cb.runs && c < cb.run;
  let k = select(0u, q * cb.run + c, inside);
  let w = f32(base[i]);
  var v = w;
  for (var r = 0u; r < ROWS; r++) { v = v + coefs[g * ROWS + r] * dirs[r * cb.run * cb.runs + k]; }
  copies[cb.first * cb.size + e] = select(w, v, inside);
}
