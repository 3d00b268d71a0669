// The tied LM head over vocabulary chunks (src/ops/lmhead.ts): when the embedding table or the
// logits are over the storage-binding limit, each (row chunk, vocabulary chunk) tile of the logits
// is a matmul of its own, and this kernel moves a tile between its contiguous buffer and its block
// of columns in the full logits (or their gradient), in either direction.
//
// dst[dstBase + i·dstStride + j] = src[srcBase + i·srcStride + j] for i < rows, j < cols. The bases
// are what a view's aligned start skipped (ops/chunks.ts windowOf).

struct Params { rows: u32, cols: u32, srcStride: u32, dstStride: u32, srcBase: u32, dstBase: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn copy_block(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= p.rows * p.cols) { return; }
  let i = k / p.cols;
  let j = k % p.cols;
  dst[p.dstBase + i * p.dstStride + j] = src[p.srcBase + i * p.srcStride + j];
}
