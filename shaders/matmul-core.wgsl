// The matmul family's uniforms, bindings and epilogue, shared by matmul.wgsl and
// matmul-subgroups.wgsl (both `// #include` it; src/gpu/kernel.ts resolves the include).

struct Params {
  M: u32, N: u32, K: u32,
  sAb: u32, sAi: u32, sAk: u32,
  sBb: u32, sBk: u32, sBj: u32,
  splits: u32, kChunk: u32,
  alpha: f32,
  flags: u32,
}

const HAS_BIAS: u32 = 1u;
const GELU: u32 = 2u;
const ACCUMULATE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
// B is a weight in most calls: stored f32 or f16 (b_t), loaded as f32 (src/gpu/kernel.ts).
// #storage-type b_t
@group(0) @binding(2) var<storage, read> B: array<b_t>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// Most rows of C one invocation of `regs` / `regs_subgroup` keeps in registers.
const MAX_RB: u32 = 16;

fn epilogue(v: f32, biasJ: f32, old: f32) -> f32 {
  var y = p.alpha * v;
  if ((p.flags & HAS_BIAS) != 0u) { y += biasJ; }
  if ((p.flags & GELU) != 0u) { y = gelu_tanh(y); }
  if ((p.flags & ACCUMULATE) != 0u) { y += old; }
  return y;
}

// Stores one result of workgroup z: a raw partial when split, else the finished value.
fn store(z: u32, i: u32, j: u32, v: f32) {
  if (i >= p.M || j >= p.N) { return; }
  let o = (z * p.M + i) * p.N + j;
  if (p.splits > 1u) { C[o] = v; return; }
  var old = 0.0;
  if ((p.flags & ACCUMULATE) != 0u) { old = C[o]; }
  var biasJ = 0.0;
  if ((p.flags & HAS_BIAS) != 0u) { biasJ = bias[j]; }
  C[o] = epilogue(v, biasJ, old);
}

// The k range workgroup z covers under split-K.
fn kRange(z: u32) -> vec2u {
  let k0 = (z % p.splits) * p.kChunk;
  return vec2u(k0, min(p.K, k0 + p.kChunk));
}
