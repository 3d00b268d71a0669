import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/io/atomic.ts';
import { openSafetensors, withSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { rng } from '../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const freshPath = () => join(dir, `f${fileNo++}.safetensors`);

/** A file written byte by byte, for formats and faults the writer never produces. */
function rawFile(header: unknown, data: Uint8Array, opts: { headerLength?: bigint } = {}): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.headerLength ?? BigInt(json.length));
  const path = freshPath();
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

const f32Bytes = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const oneTensor = (entry: object, data = f32Bytes([1, 2, 3, 4])) => rawFile({ t: entry }, data);


test('write then read round-trips F32, I32 and U32 with metadata, scalars and empty tensors', async () => {
  const r = rng(1);
  const tensors: [string, TensorToWrite][] = [
    ['a.weight', { shape: [3, 5], data: r.uniformArray(15) }],
    ['scalar', { shape: [], data: new Float32Array([-0.5]) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ['ids', { shape: [2, 2], data: new Int32Array([-1, 2, -3, 2147483647]) }],
    ['counts', { shape: [3], data: new Uint32Array([0, 7, 4294967295]) }],
    // A view into a larger buffer: only its own elements must be written.
    ['view', { shape: [2], data: new Float32Array([9, 8, 7, 6]).subarray(1, 3) }],
  ];
  const path = freshPath();
  await writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode' });
  await withSafetensors(path, async (f) => {
    assert.equal(f.names, tensors.map(([n]) => n));
    assert.equal(f.metadata, { format: 'pt', note: 'ünïcode' });
    assert.equal(f.tensors.get('ids')?.dtype, 'I32');
    assert.equal(f.tensors.get('counts')?.dtype, 'U32');
    assert.equal(await f.get('a.weight', [3, 5]), tensors[0]![1].data);
    assert.equal(await f.get('scalar', []), new Float32Array([-0.5]));
    assert.equal(await f.get('empty'), new Float32Array(0));
    assert.equal(await f.getInts('ids'), new Int32Array([-1, 2, -3, 2147483647]));
    assert.equal(await f.getInts('counts'), new Uint32Array([0, 7, 4294967295]));
    assert.equal(await f.get('view'), new Float32Array([8, 7]));
  });
});

test('the header is space-padded to a multiple of 8 bytes, so tensor data starts aligned', async () => {
  for (const name of ['w', 'ww', 'www', 'wwww']) {
    const path = freshPath();
    await writeSafetensors(path, [[name, { shape: [1], data: new Float32Array([1]) }]]);
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.is(n % 8, 0, `header length ${n}`);
    const header = bytes.subarray(8, 8 + n).toString();
    assert.is(header, JSON.stringify(JSON.parse(header)).padEnd(n, ' '));
    assert.is(bytes.length, 8 + n + 4);
  }
});

test('F16, BF16 and F64 tensors read as f32, I64 as BigInt64Array', async () => {
  // f16: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), -0, +inf, NaN
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x7e00]);
  // bf16: 1, -3.5, the top half of 0.1f (rounds down to 0.099609375)
  const bf16 = new Uint16Array([0x3f80, 0xc060, 0x3dcc]);
  const f64 = new Float64Array([0.1, -1e300, 3]);
  const i64 = new BigInt64Array([-5n, 1n << 40n]);
  const path = rawFile(
    {
      h: { dtype: 'F16', shape: [8], data_offsets: [0, 16] },
      b: { dtype: 'BF16', shape: [3], data_offsets: [16, 22] },
      pad: { dtype: 'U8', shape: [2], data_offsets: [22, 24] },
      d: { dtype: 'F64', shape: [3], data_offsets: [24, 48] },
      l: { dtype: 'I64', shape: [1, 2], data_offsets: [48, 64] },
    },
    Buffer.concat([new Uint8Array(f16.buffer), new Uint8Array(bf16.buffer), new Uint8Array(2), new Uint8Array(f64.buffer), new Uint8Array(i64.buffer)]),
  );
  await withSafetensors(path, async (f) => {
    const h = await f.get('h');
    assert.equal([...h.subarray(0, 7)], [1, -2, 0.5, 65504, 2 ** -24, -0, Infinity]);
    assert.ok(Object.is(h[5], -0));
    assert.ok(Number.isNaN(h[7]));
    assert.equal([...(await f.get('b'))], [1, -3.5, 0.099609375]);
    assert.equal(await f.get('d'), Float32Array.from(f64));
    assert.equal(await f.getInts('l', [1, 2]), i64);
    await rejects(f.get('l'), /'l' is I64; get\(\) reads F32/);
    await rejects(f.getInts('h'), /'h' is F16; getInts\(\) reads I32/);
    await rejects(f.get('pad'), /'pad' is U8/);
  });
});

test('bad files give errors that name the file and the fault', async () => {
  // A valid file, to cut short.
  const validPath = freshPath();
  await writeSafetensors(validPath, [['t', { shape: [4], data: new Float32Array(4) }]]);
  const whole = readFileSync(validPath);
  const file = (p: string) => new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const cases: [string, () => string, RegExp][] = [
    ['empty header', () => rawFile('', new Uint8Array(0)), /header is not valid JSON/],
    ['shorter than the length field', () => {
      const p = freshPath();
      writeFileSync(p, Buffer.from([1, 2, 3]));
      return p;
    }, /truncated: 3 bytes, less than the 8-byte header length/],
    ['header length beyond the file', () => rawFile({}, new Uint8Array(0), { headerLength: 1000n }), /header length 1000 runs past the end of the file \(10 bytes\)/],
    ['header length near 2^64', () => rawFile({}, new Uint8Array(0), { headerLength: (1n << 64n) - 1n }), /header length 18446744073709551615 runs past/],
    ['bad JSON', () => rawFile('{"t": {', new Uint8Array(0)), /header is not valid JSON/],
    ['header not an object', () => rawFile('[1, 2]', new Uint8Array(0)), /header must be a JSON object/],
    ['unknown dtype', () => oneTensor({ dtype: 'F12', shape: [4], data_offsets: [0, 16] }), /tensor 't': unknown dtype "F12" \(known: BOOL, /],
    ['a dtype named like an Object property', () => oneTensor({ dtype: 'toString', shape: [4], data_offsets: [0, 16] }), /tensor 't': unknown dtype "toString"/],
    ['bad shape', () => oneTensor({ dtype: 'F32', shape: [2, -2], data_offsets: [0, 16] }), /shape must be an array of non-negative integers, got \[2,-2\]/],
    ['bad offsets', () => oneTensor({ dtype: 'F32', shape: [4], data_offsets: [16, 0] }), /data_offsets must be \[begin, end\] with 0 ≤ begin ≤ end, got \[16,0\]/],
    ['size not numel × dtype size', () => oneTensor({ dtype: 'F32', shape: [3], data_offsets: [0, 16] }), /data_offsets \[0, 16\] hold 16 bytes, but F32 \[3\] needs 12/],
    ['size for another dtype', () => oneTensor({ dtype: 'F16', shape: [4], data_offsets: [0, 16] }), /hold 16 bytes, but F16 \[4\] needs 8/],
    ['offsets beyond the data', () => oneTensor({ dtype: 'F32', shape: [8], data_offsets: [0, 32] }), /data_offsets \[0, 32\] run past the data section \(16 bytes\); file truncated\?/],
    ['truncated data', () => {
      const p = freshPath();
      writeFileSync(p, whole.subarray(0, whole.length - 3));
      return p;
    }, /'t': data_offsets \[0, 16\] run past the data section \(13 bytes\)/],
    ['overlapping tensors', () => rawFile({
      a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    }, f32Bytes([1, 2, 3, 4])), /tensor 'b' \[8, 16\] overlaps 'a' \(ends at 12\)/],
    ['gap between tensors', () => rawFile({
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    }, f32Bytes([1, 2, 3, 4])), /gap of 4 bytes before tensor 'b' at 8/],
    ['bytes after the last tensor', () => oneTensor({ dtype: 'F32', shape: [3], data_offsets: [0, 12] }), /4 bytes after the last tensor are not described/],
    ['metadata not strings', () => rawFile({ __metadata__: { n_head: 12 } }, new Uint8Array(0)), /__metadata__\.n_head must be a string, got 12/],
    ['entry not an object', () => rawFile({ t: [1] }, new Uint8Array(0)), /tensor 't': entry must be an object/],
  ];
  for (const [what, make, pattern] of cases) {
    const path = make();
    try {
      await openSafetensors(path);
    } catch (e) {
      const msg = (e as Error).message;
      assert.match(msg, file(path), `${what}: message names the file: ${msg}`);
      assert.match(msg, pattern, `${what}: ${msg}`);
      continue;
    }
    assert.unreachable(`${what}: opened without error`);
  }
});

test('a missing tensor lists the closest names; a wrong shape names both shapes', async () => {
  const path = freshPath();
  const t = { shape: [2, 2], data: new Float32Array(4) };
  await writeSafetensors(path, [['h.0.attn.c_attn.weight', t], ['h.0.attn.c_proj.weight', t], ['h.1.mlp.c_fc.weight', t], ['wte.weight', t]]);
  await withSafetensors(path, async (f) => {
    await rejects(f.get('h.0.attn.c_atn.weight'), /no tensor 'h\.0\.attn\.c_atn\.weight'; closest: h\.0\.attn\.c_attn\.weight, h\.0\.attn\.c_proj\.weight/);
    await rejects(f.get('wte.weight', [2, 3]), /f\d+\.safetensors: tensor 'wte\.weight' has shape \[2×2\], expected \[2×3\]/);
    await rejects(f.get('wte.weight', [4]), /has shape \[2×2\], expected \[4\]/);
  });
  const none = freshPath();
  await writeSafetensors(none, []);
  await withSafetensors(none, async (f) => {
    assert.equal(f.names, []);
    await rejects(f.get('x'), /no tensor 'x' \(the file has no tensors\)/);
  });
});

test('writing checks value counts and names', async () => {
  const path = freshPath();
  await rejects(writeSafetensors(path, [['a', { shape: [2, 3], data: new Float32Array(5) }]]), /tensor 'a' has 5 values, shape \[2×3\] needs 6/);
  const one = { shape: [1], data: new Float32Array(1) };
  await rejects(writeSafetensors(path, [['a', one], ['a', one]]), /tensor name 'a' is reserved or repeated/);
  await rejects(writeSafetensors(path, [['__metadata__', one]]), /reserved or repeated/);
  // Names that are Object properties are plain keys.
  await writeSafetensors(path, [['__proto__', one], ['toString', one]]);
  await withSafetensors(path, async (f) => assert.equal(f.names, ['__proto__', 'toString']));
});

test('atomic writes replace the file whole and leave no temporary file, even on failure', async () => {
  const sub = mkdtempSync(join(dir, 'atomic-'));
  const path = join(sub, 'out.bin');
  await writeFileAtomic(path, 'old');
  await writeFileAtomic(path, [new Uint8Array([110, 101]), new Uint8Array([119])]);
  assert.is(readFileSync(path, 'utf8'), 'new');
  async function* failing() {
    yield new Uint8Array([1, 2, 3]);
    throw new Error('disk on fire');
  }
  await rejects(writeFileAtomic(path, failing()), /disk on fire/);
  assert.is(readFileSync(path, 'utf8'), 'new');
  assert.equal(readdirSync(sub), ['out.bin']);
  await rejects(writeFileAtomic(join(sub, 'missing-dir', 'x'), 'x'), /ENOENT/);
});

test.run();
