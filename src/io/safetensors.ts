// safetensors read/write (https://github.com/huggingface/safetensors): an 8-byte little-endian u64
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__},
// then the tensors' bytes, offsets relative to the end of the header.
// Reading streams: the header is read and validated once, each tensor's bytes only when asked for,
// so a 500 MB checkpoint is never held in memory whole.
import { fmtShape, numel } from '../gpu/tensor.ts';
import { UserError } from '../util/errors.ts';
import { writeFileAtomic } from './atomic.ts';
import { openBytes, type ByteSource } from './files.ts';

// Typed-array views below read the file's little-endian bytes in host order.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('safetensors: this module assumes a little-endian host');

/** Element sizes of every dtype the format defines; a file naming another dtype is rejected. */
const DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;
export type Dtype = keyof typeof DTYPE_BYTES;

/** The reference implementation's bound on the header, which keeps a corrupt length from allocating gigabytes. */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Byte range in the data section (after the header). */
  readonly begin: number;
  readonly end: number;
}

export type IntArray = Int32Array | Uint32Array | BigInt64Array;
/** Data we can write: the dtype follows from the array type. */
export type WritableArray = Float32Array | Int32Array | Uint32Array;

export class SafetensorsError extends UserError {
  override name = 'SafetensorsError';
}

export interface SafetensorsFile {
  readonly path: string;
  /** Tensor names in data order. */
  readonly names: readonly string[];
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** A float tensor (F32, F16, BF16, F64) as f32; `expectedShape` turns a mismatch into a named error. */
  get(name: string, expectedShape?: readonly number[]): Promise<Float32Array>;
  /** Like get, for values that must be finite (model weights): a NaN or ±Inf is a named error. */
  getFinite(name: string, expectedShape?: readonly number[]): Promise<Float32Array>;
  /** An integer tensor (I32, U32, I64) in its own type. */
  getInts(name: string, expectedShape?: readonly number[]): Promise<IntArray>;
  close(): Promise<void>;
}

/**
 * Opens a file (a path, or bytes from elsewhere: a fetched URL, a File) and validates its header;
 * tensor bytes are read on demand. Close it when done.
 */
export async function openSafetensors(file: string | ByteSource): Promise<SafetensorsFile> {
  const src = typeof file === 'string' ? await openBytes(file) : file;
  try {
    const { tensors, metadata, dataStart } = await readHeader(src);
    return new LazyFile(src.name, src, tensors, metadata, dataStart);
  } catch (e) {
    await src.close();
    throw e;
  }
}

/** Opens, runs `fn`, and closes even when `fn` throws. */
export async function withSafetensors<T>(file: string | ByteSource, fn: (f: SafetensorsFile) => Promise<T>): Promise<T> {
  const f = await openSafetensors(file);
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

async function readHeader(src: ByteSource) {
  const fail = (msg: string) => new SafetensorsError(`${src.name}: ${msg}`);
  const fileSize = src.size;
  if (fileSize < 8) throw fail(`truncated: ${fileSize} bytes, less than the 8-byte header length`);
  const n64 = new DataView((await src.read(8, 0)).buffer).getBigUint64(0, true);
  if (n64 > BigInt(fileSize - 8)) throw fail(`header length ${n64} runs past the end of the file (${fileSize} bytes); truncated or not a safetensors file`);
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) throw fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await src.read(n, 8)));
  } catch (e) {
    throw fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(header)) throw fail('header must be a JSON object');

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isRecord(entry)) throw fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw fail(`__metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.set(name, parseEntry(name, entry, fail));
  }
  // Data order, as the file lays it out.
  const sorted = new Map([...tensors].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end));
  checkLayout(sorted, fileSize - 8 - n, fail);
  return { tensors: sorted, metadata, dataStart: 8 + n };
}

function parseEntry(name: string, entry: unknown, fail: (msg: string) => Error): TensorInfo {
  if (!isRecord(entry)) throw fail(`tensor '${name}': entry must be an object`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw fail(`tensor '${name}': unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) throw fail(`tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0]! > offsets[1]!) {
    throw fail(`tensor '${name}': data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = numel(shape) * DTYPE_BYTES[dtype as Dtype];
  if (end - begin !== expected) {
    throw fail(`tensor '${name}': data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ${fmtShape(shape)} needs ${expected}`);
  }
  return { dtype: dtype as Dtype, shape, begin, end };
}

/** Like the reference implementation: tensors tile the data section exactly, with no overlap, gap or tail. */
function checkLayout(byOffset: Map<string, TensorInfo>, dataBytes: number, fail: (msg: string) => Error): void {
  let prevName = '';
  let prevEnd = 0;
  for (const [name, t] of byOffset) {
    if (t.end > dataBytes) throw fail(`tensor '${name}': data_offsets [${t.begin}, ${t.end}] run past the data section (${dataBytes} bytes); file truncated?`);
    if (t.begin < prevEnd) throw fail(`tensor '${name}' [${t.begin}, ${t.end}] overlaps '${prevName}' (ends at ${prevEnd})`);
    if (t.begin > prevEnd) throw fail(`gap of ${t.begin - prevEnd} bytes before tensor '${name}' at ${t.begin}`);
    prevName = name;
    prevEnd = t.end;
  }
  if (prevEnd !== dataBytes) throw fail(`${dataBytes - prevEnd} bytes after the last tensor are not described by the header`);
}

class LazyFile implements SafetensorsFile {
  readonly names: readonly string[];
  constructor(
    readonly path: string,
    private readonly src: ByteSource,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
    private readonly dataStart: number,
  ) {
    this.names = [...tensors.keys()];
  }

  async get(name: string, expectedShape?: readonly number[]): Promise<Float32Array> {
    const { info, bytes } = await this.#read(name, expectedShape);
    switch (info.dtype) {
      case 'F32':
        return new Float32Array(bytes.buffer);
      case 'F64':
        return Float32Array.from(new Float64Array(bytes.buffer));
      case 'F16':
        return f16ToF32(new Uint16Array(bytes.buffer));
      case 'BF16':
        return bf16ToF32(new Uint16Array(bytes.buffer));
      default:
        throw this.#error(`tensor '${name}' is ${info.dtype}; get() reads F32, F16, BF16 and F64 (use getInts for integers)`);
    }
  }

  async getFinite(name: string, expectedShape?: readonly number[]): Promise<Float32Array> {
    const data = await this.get(name, expectedShape);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) throw this.#error(`tensor '${name}' holds ${data[i]} at index ${i}; the file is corrupt (or the model diverged when it was saved)`);
    }
    return data;
  }

  async getInts(name: string, expectedShape?: readonly number[]): Promise<IntArray> {
    const { info, bytes } = await this.#read(name, expectedShape);
    switch (info.dtype) {
      case 'I32':
        return new Int32Array(bytes.buffer);
      case 'U32':
        return new Uint32Array(bytes.buffer);
      case 'I64':
        return new BigInt64Array(bytes.buffer);
      default:
        throw this.#error(`tensor '${name}' is ${info.dtype}; getInts() reads I32, U32 and I64`);
    }
  }

  async #read(name: string, expectedShape?: readonly number[]) {
    const info = this.tensors.get(name);
    if (!info) {
      const near = closestNames(name, this.names);
      throw this.#error(`no tensor '${name}'${near.length ? `; closest: ${near.join(', ')}` : ' (the file has no tensors)'}`);
    }
    if (expectedShape && !sameShape(info.shape, expectedShape)) {
      throw this.#error(`tensor '${name}' has shape ${fmtShape(info.shape)}, expected ${fmtShape(expectedShape)}`);
    }
    try {
      return { info, bytes: await this.src.read(info.end - info.begin, this.dataStart + info.begin) };
    } catch (e) {
      throw this.#error(`tensor '${name}': ${(e as Error).message} (file changed or truncated after opening?)`);
    }
  }

  #error(msg: string): SafetensorsError {
    return new SafetensorsError(`${this.path}: ${msg}`);
  }

  close(): Promise<void> {
    return this.src.close();
  }
}

export interface TensorToWrite {
  readonly shape: readonly number[];
  readonly data: WritableArray;
}

const WRITE_DTYPE = (data: WritableArray): Dtype => (data instanceof Float32Array ? 'F32' : data instanceof Int32Array ? 'I32' : 'U32');

/**
 * Writes tensors (in the given order) atomically. The header is padded with spaces to a multiple
 * of 8 bytes, as the reference implementation does, so every tensor starts 8-byte aligned.
 */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<[string, TensorToWrite]>,
  metadata: Record<string, string> = {},
): Promise<void> {
  // No prototype, so a tensor named like an Object property (e.g. __proto__) is just a key.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const [name, { shape, data }] of tensors) {
    if (name === '__metadata__' || seen.has(name)) throw new SafetensorsError(`${path}: tensor name '${name}' is reserved or repeated`);
    if (data.length !== numel(shape)) throw new SafetensorsError(`${path}: tensor '${name}' has ${data.length} values, shape ${fmtShape(shape)} needs ${numel(shape)}`);
    seen.add(name);
    header[name] = { dtype: WRITE_DTYPE(data), shape, data_offsets: [offset, offset + data.byteLength] };
    chunks.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + padded).fill(0x20);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true);
  prefix.set(json, 8);
  await writeFileAtomic(path, [prefix, ...chunks]);
}

/** IEEE half → single, including subnormals, infinities and NaN. */
export function f16ToF32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const x = h[i]!;
    const sign = x & 0x8000 ? -1 : 1;
    const exp = (x >> 10) & 0x1f;
    const frac = x & 0x3ff;
    out[i] = exp === 0 ? sign * frac * 2 ** -24 : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/**
 * Single → IEEE half bits, rounding to nearest even (as the GPU's f16() does): out-of-range values
 * become ±Infinity, tiny ones subnormals or ±0, NaN stays NaN.
 */
export function f32ToF16(f: Float32Array): Uint16Array {
  const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    const e = exp - 112; // the half's biased exponent
    let h: number;
    let rem: number;
    let half: number;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    } else if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    } else if (e <= 0) {
      // A subnormal half m·2⁻²⁴: the 24-bit significand shifted right by 14 - e.
      const shift = 14 - e;
      if (shift > 24) {
        out[i] = sign;
        continue;
      }
      const sig = mant | 0x800000;
      h = sig >>> shift;
      rem = sig & ((1 << shift) - 1);
      half = 1 << (shift - 1);
    } else {
      h = (e << 10) | (mant >>> 13);
      rem = mant & 0x1fff;
      half = 0x1000;
    }
    // A carry out of the significand moves into the exponent, as it should (up to Infinity).
    if (rem > half || (rem === half && h & 1)) h++;
    out[i] = sign | h;
  }
  return out;
}

/** bfloat16 is the top half of an f32. */
export function bf16ToF32(b: Uint16Array): Float32Array {
  const bits = new Uint32Array(b.length);
  for (let i = 0; i < b.length; i++) bits[i] = b[i]! << 16;
  return new Float32Array(bits.buffer);
}

/**
 * Up to `k` names nearest to `name`, for "did you mean" messages: few edits, and a long shared
 * prefix (same layer, same module) counts in favour, so 'ln_f.weight' suggests 'ln_f.bias'.
 */
export function closestNames(name: string, names: readonly string[], k = 3): string[] {
  return names
    .map((n) => ({ n, d: editDistance(name, n) - commonPrefixLength(name, n) }))
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
    .slice(0, k)
    .map((x) => x.n);
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isCount(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}
