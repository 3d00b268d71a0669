// SwiGLU, the Llama MLP's gate: out = silu(gate)·up, silu(g) = g·σ(g). The backward writes fresh
// dgate and dup (activation gradients, the gradient convention).

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
// forward: gate, up, out
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// backward: gate, up, dout, dgate, dup
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(5) var<storage, read_write> dup: array<f32>;

override WG: u32 = 256;

// σ(g) without overflow: exp of a non-positive number only.
fn sigmoid(g: f32) -> f32 {
  let e = exp(-abs(g));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.n) { return; }
  let g = gate[i];
  out[i] = g * sigmoid(g) * up[i];
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.n) { return; }
  let g = gate[i];
  let s = sigmoid(g);
  let d = dout[i];
  dup[i] = d * g * s;
  dgate[i] = d * up[i] * s * fma(g, 1.0 - s, 1.0);
}
