// The matmul family's uniforms, bindings and epilogue, shared by matmul.wgsl and
// matmul-subgroups.wgsl (both `// #include` it; src/gpu/kernel.ts resolves the include).

// A batch index b splits into (b / inner, b % inner), e.g. (batch, head), each with its own stride,
// and each operand starts at an offset (oA, oB, oC), so heads are read from and written into packed
// activations in place: C(b,i,j) = C[oC + (b / inner)·sCb + (b % inner)·sCh + i·sCi + j].
struct Params {
  M: u32, N: u32, K: u32,
  inner: u32, oA: u32, oB: u32, oC: u32,
  sAb: u32, sAh: u32, sAi: u32, sAk: u32,
  sBb: u32, sBh: u32, sBk: u32, sBj: u32,
  sCb: u32, sCh: u32, sCi: u32,
  splits: u32, kChunk: u32,
  alpha: f32,
  flags: u32,
}

const HAS_BIAS: u32 = 1u;
const GELU: u32 = 2u;
const ACCUMULATE: u32 = 4u;
// A is known zero above (TRIANGLE = A_LOWER: A(i,k) = 0 for k > i) or below (A_UPPER: k < i) its
// diagonal, as causal attention's probabilities are: a row block skips the k range that only adds
// zeros, and within the block each row skips the k outside its triangle rather than multiplying by
// zero (0·NaN is NaN: a NaN in a later position must not reach an earlier row). An override, so
// the per-row test folds away in every other product.
const A_LOWER: u32 = 1u;
const A_UPPER: u32 = 2u;
override TRIANGLE: u32 = 0u;
// Only C's lower triangle (j ≤ i) is wanted, as causal scores: blocks wholly above it are skipped
// and left unwritten.
const C_LOWER: u32 = 8u;

// Whether the block of C at rows i0..i0+rows-1 from column j0 on lies wholly above the diagonal
// of a C_LOWER product (uniform over the workgroup, so it may return before subgroup operations).
fn skipBlock(i0: u32, rows: u32, j0: u32) -> bool {
  return (p.flags & C_LOWER) != 0u && j0 >= i0 + rows;
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
// B is a weight in most calls: stored f32 or f16 (b_t), loaded as f32 (src/gpu/kernel.ts).
// #storage-type b_t
@group(0) @binding(2) var<storage, read> B: array<b_t>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;


fn epilogue(v: f32, biasJ: f32, old: f32) -> f32 {
  var y = p.alpha * v;
  if ((p.flags & HAS_BIAS) != 0u) { y += biasJ; }
  if ((p.flags & GELU) != 0u) { y = gelu_tanh(y); }
  if ((p.flags & ACCUMULATE) != 0u) { y += old; }
  return y;
}

fn aBase(b: u32) -> u32 { return p.oA + (b / p.inner) * p.sAb + (b % p.inner) * p.sAh; }
fn bBase(b: u32) -> u32 { return p.oB + (b / p.inner) * p.sBb + (b % p.inner) * p.sBh; }
fn cAt(b: u32, i: u32, j: u32) -> u32 { return p.oC + (b / p.inner) * p.sCb + (b % p.inner) * p.sCh + i * p.sCi + j; }

// Stores one result of workgroup z: a raw partial (contiguous [batch, splits, M, N]) when split,
// else the finished value (z is the batch index then).
fn store(z: u32, i: u32, j: u32, v: f32) {
  if (i >= p.M || j >= p.N) { return; }
  if (p.splits > 1u) { C[(z * p.M + i) * p.N + j] = v; return; }
  let o = cAt(z, i, j);
  var old = 0.0;
  if ((p.flags & ACCUMULATE) != 0u) { old = C[o]; }
  var biasJ = 0.0;
  if ((p.flags & HAS_BIAS) != 0u) { biasJ = bias[j]; }
  C[o] = epilogue(v, biasJ, old);
}

// The k range workgroup z covers under split-K, for its rows i0..i0+rows-1 (empty when k0 ≥ k1).
fn kRange(z: u32, i0: u32, rows: u32) -> vec2u {
  var k0 = (z % p.splits) * p.kChunk;
  var k1 = min(p.K, k0 + p.kChunk);
  if (TRIANGLE == A_LOWER) { k1 = min(k1, i0 + rows); }
  if (TRIANGLE == A_UPPER) { k0 = max(k0, i0); }
  return vec2u(k0, k1);
}

// Whether row i takes the product of k (inside A's triangle; always without one).
fn inTriangle(i: u32, k: u32) -> bool {
  return (TRIANGLE != A_LOWER || k <= i) && (TRIANGLE != A_UPPER || k >= i);
}
