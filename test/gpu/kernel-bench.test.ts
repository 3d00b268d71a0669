// Timing a user's own WGSL kernel: both timings measure the kernel (more work takes longer), bad
// kernels and shapes are one-line user errors, and the CLI's size, dispatch and constant flags parse.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { benchKernel, type KernelBenchOptions } from '../../src/gpu/kernel-bench.ts';
import { dawnGpu, exactTimestamps } from '../../src/io/dawn.ts';
import { parseBuffers, parseConstants, parseDispatch } from '../../src/cli/bench-kernel.ts';
import { UserError } from '../../src/util/errors.ts';
import { gpu, releaseGpu } from '../helpers.ts';

test.after(releaseGpu);

// Each invocation loops ITERS times: the work scales with an override constant.
const LOOP = `
override ITERS: u32 = 1u;
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn spin(@builtin(global_invocation_id) id: vec3<u32>) {
  var s = x[id.x];
  for (var i = 0u; i < ITERS; i++) { s = s * 0.999 + 0.001; }
  x[id.x] = s;
}`;
const base: KernelBenchOptions = { code: LOOP, source: 'loop.wgsl', entry: 'spin', dispatch: [4, 1, 1], buffers: [1024], reps: 3 };

for (const timing of ['gpu-timestamps', 'wall-clock'] as const) {
  // 200 000 chained steps per lane take milliseconds, far above a dispatch's own cost and the noise
  // of a loaded machine (4 000 did not: a light run sometimes read longer); exact timestamps, since
  // Dawn's default rounding to 65.5 µs can read the light kernel as 0.
  test(`${timing}: a kernel with 200 000 times the work takes longer`, async () => {
    const g = await dawnGpu(exactTimestamps({}));
    try {
      if (timing === 'gpu-timestamps' && !g.features.has('timestamp-query')) return;
      const light = await benchKernel(g, { ...base, timing, constants: { ITERS: 1 } });
      const heavy = await benchKernel(g, { ...base, timing, constants: { ITERS: 200_000 } });
      assert.is(light.timing, timing);
      assert.is(light.samples.length, 3);
      assert.ok(light.ms > 0 && light.minMs <= light.ms, `${light.minMs} ≤ ${light.ms}`);
      assert.ok(heavy.ms > light.ms, `heavy ${heavy.ms} ms vs light ${light.ms} ms`);
    } finally {
      g.destroy();
    }
  });
}

async function refused(o: Partial<KernelBenchOptions>, message: RegExp): Promise<void> {
  const g = await gpu();
  try {
    await benchKernel(g, { ...base, ...o });
  } catch (e) {
    assert.instance(e, UserError);
    assert.match((e as Error).message, message);
    return;
  }
  assert.unreachable(`expected ${message}`);
}

test('bad kernels and shapes are user errors that say what is wrong', async () => {
  await refused({ code: 'fn x( {' }, /^loop\.wgsl: WGSL does not compile: 1:\d+ /);
  await refused({ entry: 'nope' }, /^loop\.wgsl: entry 'nope' .*doesn't exist/);
  await refused({ buffers: [1024, 1024] }, /^loop\.wgsl: entry 'spin' with 2 storage buffer\(s\)/);
  await refused({ buffers: [6] }, /buffer 0: 6 bytes; a storage buffer is a positive multiple of 4 bytes/);
  await refused({ dispatch: [0, 1, 1] }, /dispatch 0,1,1: three workgroup counts/);
  await refused({ reps: 0 }, /reps must be a positive integer/);
  // The device stays usable after refused kernels. (ms may be 0: Dawn rounds timestamps to 65.5 µs here.)
  const after = await benchKernel(await gpu(), base);
  assert.ok(after.samples.length === base.reps! && after.ms >= 0, `after: ${JSON.stringify(after)}`);
});

test('with exactTimestamps, GPU timestamps are not rounded to 65.5 µs', async () => {
  const g = await dawnGpu(exactTimestamps({}));
  try {
    if (!g.features.has('timestamp-query')) return;
    const t = await benchKernel(g, { ...base, reps: 8 });
    // Rounded ones are multiples of 2^16 ns; eight exact samples all landing on one is not credible.
    assert.ok(t.samples.some((ms) => Math.round(ms * 1e6) % 65536 !== 0), `samples ${t.samples}`);
  } finally {
    g.destroy();
  }
});

test('exact timestamps: the quantization toggle is disabled beside any toggles already disabled', () => {
  assert.equal(exactTimestamps({}).dawnFlags, ['disable-dawn-features=timestamp_quantization']);
  assert.equal(exactTimestamps({ adapter: 'x', dawnFlags: ['enable-dawn-features=a', 'disable-dawn-features=b'] }), {
    adapter: 'x',
    dawnFlags: ['enable-dawn-features=a', 'disable-dawn-features=b,timestamp_quantization'],
  });
});

test('flags: buffer sizes, dispatch and constants', () => {
  assert.equal(parseBuffers('4096, 64k,4m,1024x1024,3x5x7'), [4096, 65536, 4 * 1024 ** 2, 4 * 1024 ** 2, 4 * 105]);
  assert.throws(() => parseBuffers('4q'), /--buffers: '4q' is not a size/);
  assert.equal(parseDispatch('8'), [8, 1, 1]);
  assert.equal(parseDispatch('8,4,2'), [8, 4, 2]);
  assert.throws(() => parseDispatch('8,0'), /--dispatch 8,0/);
  assert.throws(() => parseDispatch('1,2,3,4'), /one to three/);
  assert.equal(parseConstants('N=1024, alpha=-0.5'), { N: 1024, alpha: -0.5 });
  assert.equal(parseConstants(undefined), {});
  assert.throws(() => parseConstants('N'), /--constants: 'N' is not NAME=number/);
});

test.run();
