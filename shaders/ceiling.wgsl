// The FMA ceiling: independent vec4 multiply-add chains in registers, no memory traffic inside the
// loop. What this reaches bounds every WGSL kernel on the adapter; `seal bench` reports each matmul
// as a fraction of it. The factors come from uniforms, so the compiler cannot fold the chains; the
// sums are stored so it cannot drop them.

struct Params { iters: u32, m: f32, a: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn fma_chains(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  let m = vec4f(p.m);
  let a = vec4f(p.a);
  // Named registers, not an array: an indexed array may live in memory.
  let f = f32(i);
  var c0 = vec4f(f); var c1 = vec4f(f + 1.0); var c2 = vec4f(f + 2.0); var c3 = vec4f(f + 3.0);
  var c4 = vec4f(f + 4.0); var c5 = vec4f(f + 5.0); var c6 = vec4f(f + 6.0); var c7 = vec4f(f + 7.0);
  for (var it = 0u; it < p.iters; it++) {
    c0 = fma(c0, m, a); c1 = fma(c1, m, a); c2 = fma(c2, m, a); c3 = fma(c3, m, a);
    c4 = fma(c4, m, a); c5 = fma(c5, m, a); c6 = fma(c6, m, a); c7 = fma(c7, m, a);
  }
  let s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7));
  out[i] = s.x + s.y + s.z + s.w;
}
