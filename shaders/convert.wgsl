// Element-type conversion between f32 and f16 storage (weights stored in half precision, their
// f32 copies for edits and training): dst[i] = dst_t(src[i]). f32 → f16 rounds to nearest.

struct Params { n: u32 }

// #storage-type src_t
// #storage-type dst_t
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<src_t>;
@group(0) @binding(2) var<storage, read_write> dst: array<dst_t>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn convert(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.n) { return; }
  dst[i] = dst_t(src[i]);
}
