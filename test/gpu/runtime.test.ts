// The runtime: tensors, readback, batching order, errors, leaks and device selection.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync, writeFileSync } from 'node:fs';
import { Gpu, GpuError } from '../../src/gpu/gpu.ts';
import { GpuUnavailableError } from '../../src/gpu/device.ts';
import { SHADER_DIR } from '../../src/io/shaders.ts';
import { dawnGpu, optionsFromEnv } from '../../src/io/dawn.ts';
import { add, scale } from '../../src/ops/elementwise.ts';
import { close, gpu, releaseGpu, rng } from '../helpers.ts';

test.after(releaseGpu);

test('tensor round-trips f32, u32 and i32 data', async () => {
  const g = await gpu();
  const f = new Float32Array([1.5, -2, 3.25, 1e-30, -0]);
  const u = new Uint32Array([0, 1, 0xffffffff]);
  const i = new Int32Array([-7, 0, 2147483647]);
  const [tf, tu, ti] = [g.tensor(f), g.tensor(u), g.tensor(i)];
  assert.equal(await g.read(tf), f);
  assert.equal(await g.read(tu), u);
  assert.equal(await g.read(ti), i);
  assert.is(tf.dtype, 'f32');
  assert.is(tu.dtype, 'u32');
  for (const t of [tf, tu, ti]) t.release();
});

test('zeros are zero, empty tensors bind and read back', async () => {
  const g = await gpu();
  const z = g.zeros([3, 5]);
  assert.equal(await g.read(z), new Float32Array(15));
  const e = g.zeros([0, 4]);
  assert.is((await g.read(e)).length, 0);
  z.release();
  e.release();
});

test('dispatches in one batch run in order, writes included', async () => {
  const g = await gpu();
  const r = rng(2);
  const a = g.tensor(r.uniformArray(1000));
  const b = g.empty([1000]);
  const c = g.empty([1000]);
  scale(g, a, 2, b); // b = 2a
  g.write(a, new Float32Array(1000).fill(1)); // ordered after the scale above
  add(g, b, a, 3, c); // c = 2a_old + 3
  const [av, bv, cv] = await g.readMany([a, b, c]);
  close(av!, new Float32Array(1000).fill(1));
  close(cv!, bv!.map((x) => x + 3));
  for (const t of [a, b, c]) t.release();
});

test('clear zeroes a tensor in order with the batch', async () => {
  const g = await gpu();
  const x = g.tensor(new Float32Array([1, 2, 3, NaN, 5]));
  const before = scale(g, x, 2); // encoded before the clear: sees the old values
  g.clear(x);
  const after = scale(g, x, 2);
  const [b, c, a] = await g.readMany([before, x, after]);
  assert.equal(Array.from(b!.slice(0, 3)), [2, 4, 6]);
  assert.equal(c, new Float32Array(5));
  assert.equal(a, new Float32Array(5));
  for (const t of [x, before, after]) t.release();
});

test('large 1-D dispatches fold past 65535 workgroups', async () => {
  const g = await gpu();
  const n = 65536 * 256 + 77; // over the per-dimension limit at 256 per group
  const x = g.tensor(new Float32Array(n).fill(1.5));
  const y = scale(g, x, -2);
  const v = await g.read(y);
  assert.ok(v.every((e) => e === -3), 'every element scaled');
  x.release();
  y.release();
});

test('nothing leaks: live tensor count returns to its start', async () => {
  const g = await gpu();
  const before = g.liveTensors;
  const bytes = g.liveBytes;
  const ts = [g.zeros([10]), g.tensor(new Float32Array(7)), g.empty([2, 2])];
  assert.is(g.liveTensors, before + 3);
  for (const t of ts) t.release();
  ts[0]!.release(); // a second release is harmless
  assert.is(g.liveTensors, before, `leaked: ${g.liveLabels().join(', ')}`);
  assert.is(g.liveBytes, bytes);
});

test('reshape shares data; a view dies with its owner and frees nothing itself', async () => {
  const g = await gpu();
  const live = g.liveTensors;
  const t = g.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  const v = t.reshape([3, 2]);
  assert.equal(v.shape, [3, 2]);
  assert.is(g.liveTensors, live + 1, 'a view is not a new allocation');
  scale(g, v, 10, g.empty([3, 2])).release();
  g.write(v, new Float32Array([6, 5, 4, 3, 2, 1]));
  assert.equal(await g.read(t), new Float32Array([6, 5, 4, 3, 2, 1]));
  assert.throws(() => t.reshape([4]), /cannot reshape .* 4 elements, not 6/);
  v.release();
  assert.equal(await g.read(t), new Float32Array([6, 5, 4, 3, 2, 1]), 'releasing a view keeps the data');
  const v2 = t.reshape([6]);
  t.release();
  assert.throws(() => scale(g, v2, 1), /view of a released tensor|released/);
  assert.is(g.liveTensors, live);
});

test('released tensors cannot be used', async () => {
  const g = await gpu();
  const t = g.zeros([4]);
  t.release();
  assert.throws(() => scale(g, t, 2), /released/);
  await g.read(t).then(
    () => assert.unreachable('read of a released tensor'),
    (e: Error) => assert.match(e.message, /released/),
  );
});

test('bad tensor arguments are named', async () => {
  const g = await gpu();
  assert.throws(() => g.tensor(new Float32Array(6), [2, 2]), /6 elements but shape \[2×2\] needs 4/);
  assert.throws(() => g.empty([2, -1]), /non-negative integers/);
  assert.throws(() => g.empty([2.5]), /non-negative integers/);
  assert.throws(() => g.empty([2], 'f64' as 'f32'), /unknown dtype 'f64'/);
  assert.throws(() => g.tensor(new Float64Array(2) as unknown as Float32Array), /unsupported array type Float64Array/);
  const t = g.zeros([4]);
  assert.throws(() => g.write(t, new Float32Array(3)), /3 elements/);
  assert.throws(() => g.write(t, new Uint32Array(4)), /Uint32Array/);
  t.release();
});

test('a tensor over one buffer fails naming the limit; one over a binding is made, and binding it whole is refused by name', async () => {
  const g = await gpu();
  assert.throws(() => g.empty([Math.floor(g.limits.maxBufferSize / 4) + 1]), /over this adapter's maxBufferSize/);
  const small = await dawnGpu({ ...optionsFromEnv(), maxBinding: 1024 });
  try {
    const t = small.tensor(new Float32Array(300).fill(2));
    assert.throws(() => add(small, t, t), /binding 1, Tensor\(t\d+, f32\[300\]\), is 1200 bytes, over the storage-binding limit of 1024 bytes; this op does not split it/);
    // A view binds from its offset: an aligned one works, a misaligned one is named.
    const v = t.view(64, [236]);
    const sum = add(small, v, v);
    assert.equal([...(await small.read(sum))].slice(0, 2), [4, 4]);
    assert.throws(() => add(small, t.view(1, [10]), t.view(1, [10])), /starts at byte 4, not a multiple of minStorageBufferOffsetAlignment/);
  } finally {
    small.destroy();
  }
});

test('a WGSL compile error names the shader file and line, past the prepended and included pieces', async () => {
  const g = await gpu();
  for (const file of ['elementwise.wgsl', 'matmul.wgsl']) await g.compile(file); // compile clean
  let cases = 0;
  // Sources are cached by name: each case gets its own file.
  const broken = async (src: string, line: number) => {
    const name = `__broken_${process.pid}_${cases++}.wgsl`;
    writeFileSync(`${SHADER_DIR}/${name}`, src);
    try {
      await g.compile(name).then(
        () => assert.unreachable('compiled a broken shader'),
        (e: Error) => {
          assert.instance(e, GpuError);
          assert.match(e.message, new RegExp(`shaders/${name}:${line}:\\d+ .*undefined_thing`));
        },
      );
    } finally {
      rmSync(`${SHADER_DIR}/${name}`);
    }
  };
  // common.wgsl's helpers use the WG every shader declares.
  await broken('override WG: u32 = 1;\nfn main() {\n  let x: f32 = undefined_thing;\n}\n', 3);
  // An included file adds lines before the error; a directive moves to the top.
  await broken('diagnostic(off, derivative_uniformity);\n// #include "matmul-core.wgsl"\noverride WG: u32 = 1;\nfn main() {\n  let x: f32 = undefined_thing;\n}\n', 5);
});

test('validation errors in a batch surface at the next read', async () => {
  const g = await gpu();
  const x = g.zeros([8]);
  // One buffer bound as both input and writable output is invalid; the error is reported, not swallowed.
  g.dispatch({ shader: 'elementwise.wgsl', entry: 'scale', params: ['n:u32', 'alpha:f32'] }, { params: { n: 8, alpha: 1 }, tensors: [x, x], workgroups: [1] });
  await g.read(x).then(
    () => assert.unreachable('invalid dispatch passed'),
    (e: Error) => assert.instance(e, GpuError),
  );
  // The runtime stays usable afterwards (the failed batch's work, x's clearing included, is lost).
  const z = g.tensor(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]));
  const y = scale(g, z, 2);
  assert.equal(await g.read(y), new Float32Array([2, 4, 6, 8, 10, 12, 14, 16]));
  for (const t of [x, y, z]) t.release();
});

test('uniform parameters are checked against the kernel layout', async () => {
  const g = await gpu();
  const x = g.zeros([8]);
  const spec = { shader: 'elementwise.wgsl', entry: 'scale', params: ['n:u32', 'alpha:f32'] };
  assert.throws(() => g.dispatch(spec, { params: { n: 8 }, tensors: [x, x], workgroups: [1] }), /'alpha' must be a finite number/);
  assert.throws(() => g.dispatch(spec, { params: { n: -1, alpha: 1 }, tensors: [x, x], workgroups: [1] }), /'n' must be a u32/);
  assert.throws(() => g.dispatch(spec, { params: { n: 8, alpha: 1 }, tensors: [x, x], workgroups: [70000] }), /maxComputeWorkgroupsPerDimension/);
  x.release();
});

test('an unknown backend or adapter is a clear error', async () => {
  await dawnGpu({ backend: 'nonsense' }).then(
    () => assert.unreachable('accepted an unknown backend'),
    (e: Error) => {
      assert.instance(e, GpuUnavailableError);
      assert.match(e.message, /unknown backend 'nonsense'/);
    },
  );
  await dawnGpu({ adapter: 'No Such GPU 9000' }).then(
    () => assert.unreachable('accepted an unknown adapter'),
    (e: Error) => {
      assert.instance(e, GpuUnavailableError);
      assert.match(e.message, /no WebGPU adapter found/);
      assert.match(e.message, /bookworm-backports/); // says how to install one
    },
  );
  // A backend Dawn knows but this machine lacks.
  const other = process.platform === 'darwin' ? 'd3d12' : 'metal';
  await dawnGpu({ backend: other }).then(
    () => assert.unreachable(`found a ${other} adapter`),
    (e: Error) => assert.match(e.message, /no WebGPU adapter found/),
  );
});

test('GPU timestamps per dispatch, when the adapter has them', async () => {
  const g = await gpu();
  if (!g.setProfiling(true)) return; // no 'timestamp-query' on this adapter
  const x = g.tensor(new Float32Array(4096).fill(1));
  const y = scale(g, x, 2);
  const z = add(g, x, y, 1);
  assert.equal((await g.read(z))[0], 3);
  const profile = await g.profile();
  g.setProfiling(false);
  assert.is(profile.length, 2);
  assert.match(profile[0]!.label, /scale/);
  assert.match(profile[1]!.label, /add/);
  assert.ok(profile.every((p) => Number.isFinite(p.ms) && p.ms >= 0));
  for (const t of [x, y, z]) t.release();
});

test('after destroy, use fails clearly instead of hanging', async () => {
  const g = await dawnGpu();
  const x = g.zeros([4]);
  g.destroy();
  assert.throws(() => g.zeros([1]), /destroyed/);
  assert.throws(() => scale(g, x, 1), /destroyed|released/);
  await g.read(x).then(
    () => assert.unreachable('read after destroy'),
    (e: Error) => assert.match(e.message, /destroyed|released/),
  );
});

test.run();
