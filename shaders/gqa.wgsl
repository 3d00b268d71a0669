// Grouped-query attention onto the fused attention kernel (attention.wgsl): `pack` lays q (N, NH·HD)
// and the shared k, v heads (N, KVH·HD each) out as qkv (N, 3·NH·HD), query head h reading kv head
// h / (NH/KVH), as Hugging Face's repeat_kv does. `unpack` is its adjoint: dq is a copy, and each kv
// head's gradient sums its group's heads in order (one owner per element: deterministic). Written
// fresh, not accumulated: these are activation gradients.

struct Params { N: u32, NH: u32, KVH: u32, HD: u32 }

@group(0) @binding(0) var<uniform> p: Params;
// pack: q, k, v, qkv
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> qkv: array<f32>;
// unpack: dqkv, dq, dk, dv
@group(0) @binding(1) var<storage, read> dqkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> dq: array<f32>;
@group(0) @binding(3) var<storage, read_write> dk: array<f32>;
@group(0) @binding(4) var<storage, read_write> dv: array<f32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn pack(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C = p.NH * p.HD;
  let KC = p.KVH * p.HD;
  let j = flat(wid, nwg, lid);
  if (j >= p.N * 3u * C) { return; }
  let n = j / (3u * C);
  let col = j % (3u * C);
  let part = col / C;
  let h = (col % C) / p.HD;
  let d = col % p.HD;
  let kv = n * KC + (h / (p.NH / p.KVH)) * p.HD + d;
  if (part == 0u) {
    qkv[j] = q[n * C + col];
  } else if (part == 1u) {
    qkv[j] = k[kv];
  } else {
    qkv[j] = v[kv];
  }
}

// One invocation per (row, column of q): it writes dq there and, for columns inside the kv width,
// dk and dv of that kv column.
@compute @workgroup_size(WG)
fn unpack(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let C = p.NH * p.HD;
  let KC = p.KVH * p.HD;
  let i = flat(wid, nwg, lid);
  if (i >= p.N * C) { return; }
  let n = i / C;
  let c = i % C;
  let row = n * 3u * C;
  dq[i] = dqkv[row + c];
  if (c >= KC) { return; }
  let G = p.NH / p.KVH;
  let first = (c / p.HD) * G * p.HD + c % p.HD;
  var sk = 0.0;
  var sv = 0.0;
  for (var g = 0u; g < G; g++) {
    sk += dqkv[row + C + first + g * p.HD];
    sv += dqkv[row + 2u * C + first + g * p.HD];
  }
  dk[n * KC + c] = sk;
  dv[n * KC + c] = sv;
}
