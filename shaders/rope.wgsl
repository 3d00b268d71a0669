// Rotary position embedding (Hugging Face's rotate_half layout), in place on x (N rows of H heads ×
// HD): within each head, element i and i + HD/2 rotate by the angle of row n's position pos[n] and
// frequency i. cos/sin come as tables (P positions × HD/2), built on the host in f64: WGSL's cos
// and sin are only accurate to about 2⁻¹¹ outside [−π, π], too coarse for large positions.
// The backward is the transposed rotation (the angle negated): `dir` is 1 forward, −1 backward.

struct Params { N: u32, H: u32, HD: u32, dir: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pos: array<u32>;
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;
@group(0) @binding(3) var<storage, read> sin_t: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

override WG: u32 = 64;

// One invocation per (row, head, i < HD/2): the pair it rotates is its own.
@compute @workgroup_size(WG)
fn rotate(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let half = p.HD / 2u;
  let k = flat(wid, nwg, lid);
  if (k >= p.N * p.H * half) { return; }
  let i = k % half;
  let nh = k / half;
  let a = nh * p.HD + i;
  let t = pos[nh / p.H] * half + i;
  let c = cos_t[t];
  let s = p.dir * sin_t[t];
  let x1 = x[a];
  let x2 = x[a + half];
  x[a] = x1 * c - x2 * s;
  x[a + half] = fma(x1, s, x2 * c);
}
