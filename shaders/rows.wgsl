// Row selection: out[i, :] = x[idx[i], :] (gather) and its backward dx[idx[i], :] += dy[i, :]
// (scatter_add). A gather may make `copies` selections at once, copy g from x's rows g·stride ..
// (stride 0: every copy from the same rows): a batched pass's variants. The indices are distinct
// (checked on the host, ops/rows.ts), so each dx row has one writer: no atomics, and the bits
// depend only on the inputs.

struct Params { n: u32, C: u32, stride: u32, copies: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
// gather: idx, x, out (a bit copy: any 4-byte type, token ids too)
@group(0) @binding(2) var<storage, read> x: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
// scatter_add: idx, dy, dx
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= p.copies * p.n * p.C) { return; }
  let row = k / p.C;
  out[k] = x[((row / p.n) * p.stride + idx[row % p.n]) * p.C + k % p.C];
}

@compute @workgroup_size(WG)
fn scatter_add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = flat(wid, nwg, lid);
  if (k >= p.n * p.C) { return; }
  let j = idx[k / p.C] * p.C + k % p.C;
  dx[j] = dx[j] + dy[k];
}
