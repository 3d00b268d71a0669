// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11; Random123's constants). A
// value depends only on its (counter, key), so each element of a stream is computed where it is
// needed, in any dispatch shape, and a resumed run draws exactly what an uninterrupted one would.
// The plain-JS reference is src/reference/random.ts.

// philox_blocks: count blocks. normal: count Philox blocks covering elements [offset, offset + n)
// of the stream keyed (key0, key1), counter (element / 4, stream, 0, 0).
struct Params { count: u32, n: u32, offset: u32, key0: u32, key1: u32, stream: u32 }

@group(0) @binding(0) var<uniform> p: Params;
// philox_blocks: [count, 6] counter (4 words) then key (2 words) in, [count, 4] out
@group(0) @binding(1) var<storage, read> blocks: array<u32>;
@group(0) @binding(2) var<storage, read_write> bits: array<u32>;
// normal: [n] standard normals
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;

const PHILOX_M0 = 0xD2511F53u;
const PHILOX_M1 = 0xCD9E8D57u;
const PHILOX_W0 = 0x9E3779B9u;
const PHILOX_W1 = 0xBB67AE85u;

// The high 32 bits of a·b from 16-bit halves (WGSL has no 64-bit integers); the low ones are a * b.
fn mulhi(a: u32, b: u32) -> u32 {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

fn philox(counter: vec4u, key: vec2u) -> vec4u {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k += vec2u(PHILOX_W0, PHILOX_W1); }
    c = vec4u(mulhi(PHILOX_M1, c.z) ^ c.y ^ k.x, PHILOX_M1 * c.z, mulhi(PHILOX_M0, c.x) ^ c.w ^ k.y, PHILOX_M0 * c.x);
  }
  return c;
}

@compute @workgroup_size(WG)
fn philox_blocks(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.count) { return; }
  let b = 6u * i;
  let r = philox(vec4u(blocks[b], blocks[b + 1u], blocks[b + 2u], blocks[b + 3u]), vec2u(blocks[b + 4u], blocks[b + 5u]));
  for (var q = 0u; q < 4u; q++) { bits[4u * i + q] = r[q]; }
}

const TWO_POW_M24: f32 = 0x1p-24f;

// −log(u) for u ∈ (0, 1]. Near 1 from its series in t = 1 − u (exact): log is accurate only in
// absolute terms there, and Box–Muller's √ magnifies that error as u → 1 (8e-6 in a normal on
// lavapipe). The series' truncation at t = 1/16 is t⁶/7 ≈ 1e-8 relative.
fn neg_log(u: f32) -> f32 {
  let t = 1.0 - u;
  if (t < 0.0625) { return t * (1.0 + t * (1.0 / 2.0 + t * (1.0 / 3.0 + t * (1.0 / 4.0 + t * (1.0 / 5.0 + t * (1.0 / 6.0)))))); }
  return -log(u);
}

// Box–Muller on two words: u ∈ (0, 1] from the top 24 bits plus one (exact in f32, never 0, so the
// log is finite), the angle's turn in [-1/2, 1/2) (where cos and sin are most accurate).
fn box_muller(x: u32, y: u32) -> vec2f {
  let u = f32((x >> 8u) + 1u) * TWO_POW_M24;
  let theta = 6.2831853071795864 * (f32(y >> 8u) * TWO_POW_M24 - 0.5);
  let r = sqrt(2.0 * neg_log(u));
  return r * vec2f(cos(theta), sin(theta));
}

// One Philox block per invocation: four normals, elements 4j .. 4j+3 of the stream, those in range stored.
@compute @workgroup_size(WG)
fn normal(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = flat(wid, nwg, lid);
  if (t >= p.count) { return; }
  let j = p.offset / 4u + t;
  let w = philox(vec4u(j, p.stream, 0u, 0u), vec2u(p.key0, p.key1));
  let z = vec4f(box_muller(w.x, w.y), box_muller(w.z, w.w));
  for (var q = 0u; q < 4u; q++) {
    let e = 4u * j + q;
    if (e >= p.offset && e - p.offset < p.n) { out[e - p.offset] = z[q]; }
  }
}
