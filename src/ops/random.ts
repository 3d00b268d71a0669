// Random numbers on the GPU (shaders/random.wgsl): Philox4x32-10, counter-based, so a stream's
// element depends only on (seed, stream, element index), never on the dispatch or on what was drawn
// before. The trainer draws its exploration noise here keyed by (seed, iteration): nothing is
// uploaded, and a resumed run draws the same bits. No backward: nothing here is differentiated.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import { numel, type F32, type Tensor } from '../gpu/tensor.ts';
import { expect } from './check.ts';

const WG = 64;
const spec = (entry: string): KernelSpec => ({ shader: 'random.wgsl', entry, params: ['count:u32', 'n:u32', 'offset:u32', 'key0:u32', 'key1:u32', 'stream:u32'], constants: { WG } });
const BLOCKS = spec('philox_blocks');
const NORMAL = spec('normal');

const U32_LIMIT = 2 ** 32;

/** Which stream and where in it: the seed is the Philox key, the stream a counter word. */
export interface StreamKey {
  /** A non-negative safe integer (its low and high 32 bits are the key). */
  seed: number;
  /** A u32: e.g. the iteration. */
  stream: number;
  /** The stream's first element drawn (default 0). */
  offset?: number;
}

/** Philox4x32-10 of each row of blocks [n, 6] (counter: 4 words, then key: 2 words) → [n, 4] u32. */
export function philox4x32(gpu: Gpu, blocks: Tensor<'u32'>): Tensor<'u32'> {
  expect('philox4x32', 'blocks', blocks, [-1, 6], 'u32');
  const count = blocks.shape[0]!;
  const out = gpu.empty([count, 4], 'u32');
  gpu.dispatch(BLOCKS, { params: { count, n: 0, offset: 0, key0: 0, key1: 0, stream: 0 }, tensors: [blocks, out], workgroups: gpu.grid(count, WG) });
  return out;
}

/**
 * Standard normals shaped `shape`: flat element i is element offset + i of the stream (seed, stream),
 * from Philox block ⌊(offset + i)/4⌋ (counter (block, stream, 0, 0)) by Box–Muller; the same at any
 * shape or offset that reaches it.
 */
export function normal(gpu: Gpu, shape: readonly number[], key: StreamKey): F32 {
  const { seed, stream, offset = 0 } = key;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`normal: seed must be a non-negative safe integer, got ${seed}`);
  if (!Number.isInteger(stream) || stream < 0 || stream >= U32_LIMIT) throw new RangeError(`normal: stream must be a u32, got ${stream}`);
  const n = numel(shape);
  if (!Number.isInteger(offset) || offset < 0 || offset + n >= U32_LIMIT) throw new RangeError(`normal: elements [${offset}, ${offset + n}) are past the end of a stream (2³² − 1 elements)`);
  const out = gpu.empty(shape);
  const count = n === 0 ? 0 : Math.floor((offset + n - 1) / 4) - Math.floor(offset / 4) + 1;
  const params = { count, n, offset, key0: seed % U32_LIMIT, key1: Math.floor(seed / U32_LIMIT), stream };
  gpu.dispatch(NORMAL, { params, tensors: [out], workgroups: gpu.grid(count, WG) });
  return out;
}
