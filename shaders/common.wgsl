// Helpers every shader gets: src/gpu/kernel.ts prepends this file to each shader it loads (compile
// errors still name the file and line they come from). Every shader declares `override WG`.

// The index of a workgroup in a 1-D grid folded into y past maxComputeWorkgroupsPerDimension
// (Gpu.grid on the host side).
fn folded_group(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.y * nwg.x + wid.x;
}

// The invocation's index in such a grid of WG-wide workgroups.
fn flat(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return folded_group(wid, nwg) * WG + lid.x;
}

// The largest finite f32: the start of a running max that must not be -inf (-inf - -inf is NaN).
const F32_MAX = 0x1.fffffep+127f;

// GPT-2's GELU, tanh form: 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³). Written as
// x·σ(2u), and sech²(u) from exp(-2|u|): the same function, but without the f32 cancellation of
// 1 ± tanh(u) in the tails (and without tanh, which some drivers compute through overflowing exps).
const GELU_SCALE: f32 = 0.7978845608028654; // √(2/π)
const GELU_CUBE: f32 = 0.044715;

fn gelu_u(v: f32) -> f32 {
  return GELU_SCALE * fma(GELU_CUBE * v, v * v, v);
}

fn gelu_tanh(v: f32) -> f32 {
  return v / (1.0 + exp(-2.0 * gelu_u(v)));
}

// d gelu_tanh(v) / dv
fn gelu_grad(v: f32) -> f32 {
  let u = gelu_u(v);
  let e = exp(-2.0 * abs(u));
  let sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e));
  return 1.0 / (1.0 + exp(-2.0 * u)) + 0.5 * v * sech2 * GELU_SCALE * fma(3.0 * GELU_CUBE, v * v, 1.0);
}
