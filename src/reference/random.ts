// Plain-JS reference of shaders/random.wgsl: Philox4x32-10 with BigInt products (not the shader's
// 16-bit halves, so the two check each other), and its normals by Box–Muller, f32 where the shader
// rounds to f32 (the uniforms and the angle) and f64 for log, sqrt, cos and sin.

const M0 = 0xd2511f53n;
const M1 = 0xcd9e8d57n;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const MASK = 0xffffffffn;

function mulhilo(m: bigint, x: number): [number, number] {
  const p = m * BigInt(x >>> 0);
  return [Number(p >> 32n), Number(p & MASK)];
}

/** Philox4x32-10 of a counter (4 words) under a key (2 words). */
export function philox4x32(counter: readonly number[], key: readonly number[]): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((x) => x >>> 0) as [number, number, number, number];
  let [k0, k1] = key.map((x) => x >>> 0) as [number, number];
  for (let r = 0; r < 10; r++) {
    if (r > 0) [k0, k1] = [(k0 + W0) >>> 0, (k1 + W1) >>> 0];
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

function boxMuller(x: number, y: number): [number, number] {
  const u = ((x >>> 8) + 1) * 2 ** -24;
  const theta = Math.fround(Math.fround(2 * Math.PI) * ((y >>> 8) * 2 ** -24 - 0.5));
  const r = Math.sqrt(-2 * Math.log(u));
  return [r * Math.cos(theta), r * Math.sin(theta)];
}

/** Elements [offset, offset + n) of the normal stream (seed, stream): block ⌊e/4⌋, counter (block, stream, 0, 0). */
export function normals(n: number, seed: number, stream: number, offset = 0): Float64Array {
  const out = new Float64Array(n);
  const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
  for (let i = 0; i < n; i++) {
    const e = offset + i;
    const w = philox4x32([Math.floor(e / 4), stream, 0, 0], key);
    const pair = boxMuller(w[e % 4 < 2 ? 0 : 2], w[e % 4 < 2 ? 1 : 3]);
    out[i] = pair[e % 2]!;
  }
  return out;
}
