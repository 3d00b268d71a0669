// LoRA: rank-r adapters on a linear layer y = x·W (+ s·(x·A)·B), A [in, r], B [r, out], r small.
// Two kernels the general matmul serves badly because one side is only r wide:
// - `thin`: H[n, j] = Σ_k X[n, k]·Y(k, j) for j < r, Y read through strides (A, or Bᵀ in the
//   backward's dH = dY·Bᵀ); one invocation per output element, a plain loop over k. Stacked
//   adapters (G of them, factors [G, ·, ·]): row n belongs to group n / gRows, whose Y starts at
//   group·sYg (one dispatch trains G adapters on G contiguous, equal row blocks).
// - `merge`: W' = W + s·A·B for W [in, out] (GPT-2's Conv1D), or W + s·(A·B)ᵀ for W [out, in]
//   (nn.Linear, `trans`); s < 0 unmerges. A and B are read from aOff, bOff: one adapter of a stack.
// Everything else (y += s·H·B, dB += s·Hᵀ·dY, dA += Xᵀ·dH, dX += dH·Aᵀ) is a full-width product for
// matmul.wgsl.

struct Params { n: u32, k: u32, r: u32, sYk: u32, sYj: u32, sYg: u32, gRows: u32, cols: u32, trans: u32, aOff: u32, bOff: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// merge: base weight, A, B, merged output.
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> merged: array<f32>;

override WG: u32 = 64;

// out [n, r] = scale · X [n, k] · Y, Y(k, j) = y[(n / gRows)·sYg + k·sYk + j·sYj]
@compute @workgroup_size(WG)
fn thin(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.n * p.r) { return; }
  let row = i / p.r;
  let j = i % p.r;
  let y0 = (row / p.gRows) * p.sYg + j * p.sYj;
  var acc = 0.0;
  for (var k = 0u; k < p.k; k++) {
    acc = fma(x[row * p.k + k], y[y0 + k * p.sYk], acc);
  }
  out[i] = p.scale * acc;
}

// merged [n / cols, cols] = W + scale · A [in, r] · B [r, k], or its transpose's (trans): W [k, in]
@compute @workgroup_size(WG)
fn merge(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.n) { return; }
  let row = i / p.cols;
  let col = i % p.cols;
  // The input index (A's row) and the output index (B's column) of this element.
  let ia = select(row, col, p.trans != 0u);
  let jb = select(col, row, p.trans != 0u);
  var acc = 0.0;
  for (var t = 0u; t < p.r; t++) {
    acc = fma(a[p.aOff + ia * p.r + t], b[p.bOff + t * p.k + jb], acc);
  }
  merged[i] = fma(p.scale, acc, w[i]);
}
