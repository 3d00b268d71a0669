// Fuzzing the safetensors reader: seeded mutations of valid files (truncations, flipped bits,
// inserted and deleted bytes, edited headers, wrong header lengths, huge declared tensors). Every
// case must open and read, or fail with a SafetensorsError (a user error), quickly; and no buffer
// the reader allocates may be larger than the file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { Rng } from '../../src/util/random.ts';
import { fuzz, mutateBytes, mutateJson, type Mutant } from '../fuzz.ts';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-fuzz-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const CASES = 1200;
const INTS = new Set(['I32', 'U32', 'I64']);
const FLOATS = new Set(['F32', 'F16', 'BF16', 'F64']);

/** A file's parts: the header as JSON and the data section. */
function split(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')), data: bytes.subarray(8 + n) };
}

function join8(header: unknown, data: Uint8Array, length?: bigint): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

async function validFiles(): Promise<Uint8Array[]> {
  const r = new Rng(3);
  const ours = join(dir, 'ours.safetensors');
  await writeSafetensors(
    ours,
    [
      ['wte.weight', { shape: [3, 4], data: r.uniformArray(12) }],
      ['ids', { shape: [5], data: Int32Array.from([1, -2, 3, -4, 5]) }],
      ['u', { shape: [2, 2], data: Uint32Array.from([1, 2, 3, 4]) }],
      ['scalar', { shape: [], data: Float32Array.from([7]) }],
      ['empty', { shape: [0, 3], data: new Float32Array(0) }],
    ],
    { format: 'seal-webgpu/gpt2', config: '{"nLayer":1}' },
  );
  const mixed = join8(
    {
      h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
      b: { dtype: 'BF16', shape: [2, 2], data_offsets: [8, 16] },
      l: { dtype: 'I64', shape: [2], data_offsets: [16, 32] },
      d: { dtype: 'F64', shape: [1], data_offsets: [32, 40] },
      flag: { dtype: 'BOOL', shape: [8], data_offsets: [40, 48] },
    },
    Uint8Array.from({ length: 48 }, () => r.int(256)),
  );
  return [await readFile(ours), mixed];
}

/** One mutant of a valid file: bytes, the header length field, the header's JSON, or a huge tensor. */
function mutate(rng: Rng, bytes: Uint8Array): Mutant {
  const { header, data } = split(bytes);
  const headerEnd = bytes.length - data.length;
  const kind = rng.next();
  if (kind < 0.4) return mutateBytes(rng, bytes, headerEnd);
  if (kind < 0.55) {
    const n = BigInt(headerEnd - 8);
    const length = rng.pick([0n, 1n, n - 1n, n + 1n, n + 8n, BigInt(bytes.length), 1n << 31n, 1n << 32n, 1n << 53n, (1n << 64n) - 1n, BigInt(rng.int(2 ** 31)) << 32n]);
    return { what: `header length ${length}`, bytes: join8(header, data, length) };
  }
  if (kind < 0.9) {
    const { what, value } = mutateJson(rng, header);
    return { what: `header ${what}`, bytes: join8(value, data) };
  }
  // A tensor whose shape and offsets agree with each other but claim far more bytes than there are.
  const name = rng.pick(Object.keys(header).filter((k) => k !== '__metadata__'));
  const entry = header[name] as { data_offsets: [number, number] };
  const elements = rng.pick([2 ** 20, 2 ** 31, 2 ** 40, 2 ** 50]);
  const huge = { ...header, [name]: { dtype: 'U8', shape: [elements], data_offsets: [entry.data_offsets[0], entry.data_offsets[0] + elements] } };
  return { what: `'${name}' declared as ${elements} bytes`, bytes: join8(huge, data) };
}

/**
 * Runs `fn`, then throws its error if it had one, after checking the largest Uint8Array length asked
 * for meanwhile (the reader allocates every read as one) against `limit`.
 */
async function allocatingAtMost(limit: number, what: string, fn: () => Promise<unknown>): Promise<void> {
  const Real = globalThis.Uint8Array;
  let largest = 0;
  class Spy extends Real {
    constructor(...args: [number]) {
      if (typeof args[0] === 'number') largest = Math.max(largest, args[0]);
      super(...args);
    }
  }
  globalThis.Uint8Array = Spy as typeof Uint8Array;
  const error = await fn().then(() => null, (e: unknown) => e);
  globalThis.Uint8Array = Real;
  assert.ok(largest <= limit, `${what}: allocated ${largest} bytes for a file of ${limit}`);
  if (error) throw error;
}

/** Opens the file and reads every tensor a getter reads. */
const readAll = (path: string) =>
  withSafetensors(path, async (f) => {
    for (const [name, t] of f.tensors) {
      if (FLOATS.has(t.dtype)) await f.get(name, t.shape);
      else if (INTS.has(t.dtype)) await f.getInts(name, t.shape);
    }
  });

test(`${CASES} seeded mutations of valid files: each loads or is a named error, fast, with bounded allocations`, async () => {
  const valid = await validFiles();
  const rng = new Rng(2024);
  const path = join(dir, 'mutant.safetensors');
  const cases = Array.from({ length: CASES }, (_, i) => {
    const m = mutate(rng, valid[i % valid.length]!);
    return {
      what: `case ${i}: ${m.what}`,
      run: async () => {
        writeFileSync(path, m.bytes);
        await allocatingAtMost(m.bytes.length, `case ${i}: ${m.what}`, () => readAll(path));
      },
    };
  });
  const tally = await fuzz(cases, 2000);
  // The reader is strict (tensors must tile the data exactly), so most mutants are refused; data
  // bits flipped still load.
  assert.ok(tally.loaded >= 20 && tally.refused > CASES / 2, JSON.stringify(tally));
});

test.run();
