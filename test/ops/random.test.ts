// Philox4x32-10 on the GPU and in the reference against Random123's known answers, bit for bit; the
// GPU normals against the reference; their moments; and the stream's keys: any element depends only
// on (seed, stream, index), never on the shape or offset of the draw that reaches it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { normal, philox4x32 } from '../../src/ops/random.ts';
import * as ref from '../../src/reference/random.ts';
import { close, gpu, releaseGpu, sameBits } from '../helpers.ts';

test.after(releaseGpu);

// Random123's kat_vectors for philox4x32_10: counter, key, output.
const KAT: [number[], number[], number[]][] = [
  [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
  [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
  [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
];

test('Philox4x32-10 gives the published known answers, on the reference and on the GPU', async () => {
  for (const [c, k, want] of KAT) assert.equal(ref.philox4x32(c, k), want, `reference, counter ${c}`);
  const g = await gpu();
  const blocks = g.tensor(Uint32Array.from(KAT.flatMap(([c, k]) => [...c, ...k])), [KAT.length, 6]);
  const out = philox4x32(g, blocks);
  assert.equal(Array.from(await g.read(out)), KAT.flatMap(([, , w]) => w));
  const bad = g.zeros([2, 4], 'u32');
  assert.throws(() => philox4x32(g, bad), /philox4x32: blocks must have shape \[\*×6\], got \[2×4\]/);
  for (const t of [blocks, out, bad]) t.release();
});

test('GPU normals match the reference at awkward offsets and sizes; any draw of an element gives its bits', async () => {
  const g = await gpu();
  const seed = 2 ** 40 + 12345; // both key words in use
  for (const [n, offset] of [[1, 0], [7, 3], [4099, 6], [2, 2 ** 32 - 3]] as const) {
    const z = normal(g, [n], { seed, stream: 9, offset });
    // 4·10⁻⁷ at most over 2·10⁵ samples on lavapipe (f32 log, sqrt, cos, sin).
    close(await g.read(z), ref.normals(n, seed, 9, offset), 1e-6, 1e-6, `n ${n} offset ${offset}`);
    z.release();
  }
  // The same elements drawn as one [5, 13] tensor and as a slice at offset 21.
  const whole = normal(g, [5, 13], { seed, stream: 9 });
  const part = normal(g, [50], { seed, stream: 9, offset: 21 });
  const [a, b] = (await g.readMany([whole, part])) as Float32Array[];
  sameBits(b!.subarray(0, 44), a!.subarray(21));
  for (const t of [whole, part]) t.release();
});

test('normals: moments over 10⁵ samples; the same key reproduces, another stream or seed differs', async () => {
  const g = await gpu();
  const n = 100_000;
  const draws = [normal(g, [n], { seed: 7, stream: 3 }), normal(g, [n], { seed: 7, stream: 3 }), normal(g, [n], { seed: 7, stream: 4 }), normal(g, [n], { seed: 8, stream: 3 })];
  const [z, again, stream4, seed8] = (await g.readMany(draws)) as Float32Array[];
  assert.ok(z!.every(Number.isFinite), 'finite');
  const mean = z!.reduce((s, v) => s + v, 0) / n;
  const variance = z!.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1);
  // Standard errors: 1/√n ≈ 0.0032 for the mean, √(2/n) ≈ 0.0045 for the variance; 5σ bounds.
  assert.ok(Math.abs(mean) < 0.016, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.023, `variance ${variance}`);
  const tail = z!.filter((v) => Math.abs(v) > 1.96).length / n;
  assert.ok(Math.abs(tail - 0.05) < 0.0035, `P(|z| > 1.96) = ${tail}`);
  sameBits(again!, z!, 'same (seed, stream)');
  for (const [other, what] of [[stream4!, 'stream'], [seed8!, 'seed']] as const) {
    const same = other.filter((v, i) => v === z![i]).length;
    assert.ok(same < 10, `another ${what}: ${same} equal elements`);
  }
  for (const t of draws) t.release();
});

test('normal names a bad key', async () => {
  const g = await gpu();
  assert.throws(() => normal(g, [4], { seed: -1, stream: 0 }), /normal: seed must be a non-negative safe integer, got -1/);
  assert.throws(() => normal(g, [4], { seed: 1, stream: 2 ** 32 }), /normal: stream must be a u32, got 4294967296/);
  assert.throws(() => normal(g, [4], { seed: 1, stream: 0, offset: 2 ** 32 - 4 }), /normal: elements \[4294967292, 4294967296\) are past the end of a stream/);
  assert.is(g.liveTensors, 0);
});

test.run();
