// Kernels for generation with a KV cache (shaders/decode.wgsl): one token's embedding per sequence
// at its own position, row gather, filling the cache after a prefill, and single-query causal
// attention over the cache. Inference only: nothing here has a backward.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32, Tensor, Weight } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';
import { rowsOf } from './chunks.ts';
import { tableTypes, vocabChunks } from './embedding.ts';

const WG = 64;
const spec = (entry: string): KernelSpec => ({ shader: 'decode.wgsl', entry, params: ['B:u32', 'T:u32', 'C:u32', 'NH:u32', 'Tcap:u32', 'V:u32', 'scale:f32', 'v0:u32', 'v1:u32'], constants: { WG } });
const EMBED_STEP = spec('embed_step');
const GATHER_ROWS = spec('gather_rows');
const KV_FILL = spec('kv_fill');
const SCORES = spec('scores');
const SOFTMAX = spec('softmax');
const ATTEND = spec('attend');

type U32 = Tensor<'u32'>;
const NONE = { B: 0, T: 0, C: 0, NH: 0, Tcap: 0, V: 0, scale: 0, v0: 0, v1: 0 };

/** out[b] = wte[tokens[b]] + wpe[pos[b]] (B,C); NaN in a row whose token is ≥ V. */
export function embedStep(gpu: Gpu, tokens: U32, pos: U32, wte: Weight, wpe: Weight): F32 {
  const op = 'embedStep';
  expect(op, 'tokens', tokens, [-1], 'u32');
  const B = tokens.size;
  expect(op, 'pos', pos, [B], 'u32');
  expect(op, 'wte', wte, [-1, -1], wte.dtype);
  const [V, C] = wte.shape as [number, number];
  expect(op, 'wpe', wpe, [-1, C], wpe.dtype);
  const out = gpu.empty([B, C]);
  for (const [v0, v1] of vocabChunks(gpu, wte)) {
    gpu.dispatch({ ...EMBED_STEP, types: tableTypes(wte, wpe) }, { params: { ...NONE, B, C, V, v0, v1 }, tensors: [tokens, pos, rowsOf(wte, [v0, v1]), wpe, out], workgroups: gpu.grid(B * C, WG) });
  }
  return out;
}

/**
 * out[i] = src[rows[i]] for src (N,C), stored f32 or f16 and bound in row chunks when over the
 * binding limit (a token embedding table): e.g. each sequence's last position after a prefill, or
 * a rotary model's token embedding. NaN rows where rows[i] ≥ N.
 */
export function gatherRows(gpu: Gpu, src: Weight, rows: U32): F32 {
  const op = 'gatherRows';
  expect(op, 'src', src, [-1, -1], src.dtype);
  expect(op, 'rows', rows, [-1], 'u32');
  const [V, C] = src.shape as [number, number];
  const B = rows.size;
  const out = gpu.empty([B, C]);
  for (const [v0, v1] of vocabChunks(gpu, src)) {
    gpu.dispatch({ ...GATHER_ROWS, types: { src_t: src.dtype } }, { params: { ...NONE, B, C, V, v0, v1 }, tensors: [rows, rowsOf(src, [v0, v1]), out], workgroups: gpu.grid(B * C, WG) });
  }
  return out;
}

function cacheDims(op: string, kv: F32, B: number, C: number): number {
  if (kv.shape.length !== 3) throw new ShapeError(`${op}: kv must have shape [B×Tcap×2C], got ${kv}`);
  expect(op, 'kv', kv, [B, -1, 2 * C]);
  return kv.shape[1]!;
}

/** Copies the k and v of a prefill's qkv (B,T,3C) into cache rows 0..T-1 of kv (B,Tcap,2C). */
export function kvFill(gpu: Gpu, qkv: F32, kv: F32): void {
  const op = 'kvFill';
  if (qkv.shape.length !== 3 || qkv.shape[2]! % 3 !== 0) throw new ShapeError(`${op}: qkv must have shape [B×T×3C], got ${qkv}`);
  const [B, T, C3] = qkv.shape as [number, number, number];
  const C = C3 / 3;
  const Tcap = cacheDims(op, kv, B, C);
  if (T > Tcap) throw new ShapeError(`${op}: ${T} positions do not fit a cache of ${Tcap}`);
  noAlias(op, kv, qkv);
  gpu.dispatch(KV_FILL, { params: { ...NONE, B, T, C, Tcap }, tensors: [qkv, kv], workgroups: gpu.grid(B * T * 2 * C, WG) });
}

/**
 * One query per sequence: qkv (B,3C) is the new token's q, k, v; its k and v are written into
 * cache row pos[b] of kv (B,Tcap,2C), and out (B,C) is causal attention over rows 0..pos[b].
 * `T` bounds the positions (every pos[b] < T ≤ Tcap): it sizes the grid; pos lives on the GPU.
 */
export function decodeAttention(gpu: Gpu, qkv: F32, kv: F32, pos: U32, T: number, NH: number): F32 {
  const op = 'decodeAttention';
  if (qkv.shape.length !== 2 || qkv.shape[1]! % 3 !== 0) throw new ShapeError(`${op}: qkv must have shape [B×3C], got ${qkv}`);
  const [B, C3] = qkv.shape as [number, number];
  const C = C3 / 3;
  if (!Number.isInteger(NH) || NH < 1 || C % NH !== 0) throw new ShapeError(`${op}: C = ${C} must split into NH = ${NH} heads`);
  const Tcap = cacheDims(op, kv, B, C);
  expect(op, 'pos', pos, [B], 'u32');
  if (!Number.isInteger(T) || T < 1 || T > Tcap) throw new RangeError(`${op}: T = ${T} must be in 1..${Tcap} (the cache's length)`);
  noAlias(op, kv, qkv, pos);
  const params = { ...NONE, B, T, C, NH, Tcap, scale: 1 / Math.sqrt(C / NH) };
  const scores = gpu.empty([B, NH, Tcap], 'f32', 'decode.scores');
  const out = gpu.empty([B, C]);
  gpu.dispatch(SCORES, { params, tensors: [qkv, pos, kv, scores], workgroups: gpu.grid(B * NH * T, WG) });
  gpu.dispatch(SOFTMAX, { params, tensors: [pos, scores], workgroups: gpu.grid(B * NH, WG) });
  gpu.dispatch(ATTEND, { params, tensors: [pos, kv, scores, out], workgroups: gpu.grid(B * C, WG) });
  scores.release();
  return out;
}
