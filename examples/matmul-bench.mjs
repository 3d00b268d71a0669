// A matmul shader of your own, timed on this adapter beside seal-webgpu's matmul.
//   node examples/matmul-bench.mjs [N]      (N×N×N, default 128)
// The same timing from the command line: seal bench --kernel FILE.wgsl --entry matmul --dispatch …
import { benchKernel, dawnGpu, exactTimestamps, matmul, optionsFromEnv } from 'seal-webgpu';

const N = Number(process.argv[2] ?? 128);
const TILE = 8;

// One output element per invocation; sizes come in as override constants, so no uniform is needed.
const code = /* wgsl */ `
override N: u32;
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(${TILE}, ${TILE})
fn matmul(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x >= N || id.y >= N) { return; }
  var s = 0.0;
  for (var k = 0u; k < N; k++) { s += a[id.y * N + k] * b[k * N + id.x]; }
  c[id.y * N + id.x] = s;
}`;

// Dawn rounds GPU timestamps to 65.5 µs unless told not to.
const gpu = await dawnGpu(exactTimestamps(optionsFromEnv()));
try {
  const groups = Math.ceil(N / TILE);
  const bytes = 4 * N * N;
  const mine = await benchKernel(gpu, { code, source: 'naive matmul', entry: 'matmul', dispatch: [groups, groups, 1], buffers: [bytes, bytes, bytes], constants: { N }, reps: 5 });

  // The library's matmul (its variant autotuned per adapter), timed the same way where the adapter
  // has timestamps (the dispatches it records while profiling), else by the wall clock.
  const a = gpu.tensor(new Float32Array(N * N).fill(1), [N, N]);
  const b = gpu.tensor(new Float32Array(N * N).fill(1), [N, N]);
  matmul(gpu, a, b).release();
  await gpu.sync();
  const reps = 5;
  const profiled = gpu.setProfiling(true);
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) matmul(gpu, a, b).release();
  await gpu.sync();
  const wallMs = (performance.now() - t0) / reps;
  const libMs = profiled ? (await gpu.profile()).reduce((s, e) => s + e.ms, 0) / reps : wallMs;
  gpu.setProfiling(false);
  a.release();
  b.release();

  const gflops = (ms) => (2 * N ** 3) / ms / 1e6;
  console.log(`adapter: ${gpu.summary.description || gpu.summary.device}`);
  console.log(`${N}×${N}×${N}  your shader: ${mine.ms.toFixed(3)} ms, ${gflops(mine.ms).toFixed(2)} GFLOP/s (${mine.timing}, median of ${mine.samples.length})`);
  console.log(`${N}×${N}×${N}  seal-webgpu: ${libMs.toFixed(3)} ms, ${gflops(libMs).toFixed(2)} GFLOP/s (${profiled ? 'gpu-timestamps' : 'wall-clock'}, mean of ${reps})`);
} finally {
  gpu.destroy();
}
