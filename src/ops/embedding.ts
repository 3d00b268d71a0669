// Token + position embedding (GPT-2's wte, wpe). Backward accumulates (+=) into dwte and dwpe, as
// llm.c does (the gradient convention, docs/ARCHITECTURE.md), deterministically (see shaders/embedding.wgsl). A token id ≥ V cannot be caught on
// the GPU: the forward writes NaN in that position's row. `uploadTokens` checks ids on the host.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32, Tensor, Weight } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';
import { rowChunks, rowsOf } from './chunks.ts';
import { gatherRows } from './decode.ts';

const WG = 64;
const spec = (entry: string): KernelSpec => ({ shader: 'embedding.wgsl', entry, params: ['N:u32', 'T:u32', 'C:u32', 'V:u32', 'v0:u32', 'v1:u32'], constants: { WG } });
const FORWARD = spec('forward');
const LINK = spec('link');
const WTE_BACKWARD = spec('wte_backward');
const WPE_BACKWARD = spec('wpe_backward');

type Tokens = Tensor<'u32'>;

function dims(op: string, tokens: Tokens, wte: Weight, wpe: Weight) {
  if (tokens.shape.length !== 2) throw new ShapeError(`${op}: tokens must have shape [B×T], got ${tokens}`);
  const [B, T] = tokens.shape as [number, number];
  expect(op, 'tokens', tokens, [B, T], 'u32');
  expect(op, 'wte', wte, [-1, -1], wte.dtype);
  const [V, C] = wte.shape as [number, number];
  expect(op, 'wpe', wpe, [-1, C], wpe.dtype);
  if (T > wpe.shape[0]!) throw new ShapeError(`${op}: T = ${T} is longer than wpe's ${wpe.shape[0]} positions`);
  return { B, T, C, V, N: B * T };
}

/** Ranges of wte's rows (vocabulary ids) that fit one binding each: one range unless wte is over the limit. */
export const vocabChunks = (gpu: Gpu, wte: Weight) => rowChunks(gpu, wte.shape[0]!, [wte.bytes / wte.shape[0]!], `wte ${wte}`);

/** The embedding tables' storage types, for a kernel that reads them. */
export const tableTypes = (wte: Weight, wpe: Weight) => ({ wte_t: wte.dtype, wpe_t: wpe.dtype });

/** Uploads token ids (B,T), throwing on the first id that is not below V. */
export function uploadTokens(gpu: Gpu, ids: Uint32Array, shape: readonly [number, number], V: number): Tokens {
  const bad = ids.findIndex((id) => id >= V);
  if (bad >= 0) throw new RangeError(`token id ${ids[bad]} at position ${bad} is out of range for a vocabulary of ${V}`);
  return gpu.tensor(ids, shape);
}

/** out[b,t,:] = wte[tokens[b,t]] + wpe[t]; NaN where tokens[b,t] ≥ V. */
export function embeddingForward(gpu: Gpu, tokens: Tokens, wte: Weight, wpe: Weight): F32 {
  const { B, T, C, ...params } = dims('embeddingForward', tokens, wte, wpe);
  const out = gpu.empty([B, T, C]);
  // Each vocabulary chunk writes the positions whose token it holds (the first, those ≥ V).
  for (const [v0, v1] of vocabChunks(gpu, wte)) {
    gpu.dispatch({ ...FORWARD, types: tableTypes(wte, wpe) }, { params: { T, C, ...params, v0, v1 }, tensors: [tokens, rowsOf(wte, [v0, v1]), wpe, out], workgroups: gpu.grid(params.N * C, WG) });
  }
  return out;
}

/** Accumulates the gradients of embeddingForward into dwte (V,C) and dwpe (maxT,C). */
export function embeddingBackward(gpu: Gpu, dout: F32, tokens: Tokens, dwte: F32, dwpe: F32): void {
  const op = 'embeddingBackward';
  const dimensions = dims(op, tokens, dwte, dwpe);
  const { B, T, C, V } = dimensions;
  const params = { ...dimensions, v0: 0, v1: V };
  expect(op, 'dout', dout, [B, T, C]);
  noAlias(op, dwte, dout, dwpe);
  noAlias(op, dwpe, dout);
  wteBackward(gpu, dout, tokens, dwte, params);
  gpu.dispatch(WPE_BACKWARD, { params, tensors: [dout, dwpe], workgroups: gpu.grid(T * C, WG) });
}

function wteBackward(gpu: Gpu, dout: F32, tokens: Tokens, dwte: F32, params: { N: number; T: number; C: number; V: number }): void {
  const { N, C } = params;
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  const links = gpu.empty([N, 2], 'u32', 'embedding.links');
  gpu.dispatch(LINK, { params: { ...params, v0: 0, v1: params.V }, tensors: [tokens, links], workgroups: gpu.grid(N, WG) });
  for (const [v0, v1] of vocabChunks(gpu, dwte)) {
    gpu.dispatch(WTE_BACKWARD, { params: { ...params, v0, v1 }, tensors: [tokens, links, dout, rowsOf(dwte, [v0, v1])], workgroups: [Math.ceil(C / WG), Math.min(N, maxDim), Math.ceil(N / maxDim)] });
  }
  links.release();
}

/** Rows (B·T, C): out[b·T+t] = wte[tokens[b,t]], a token embedding with no position table (rotary models). */
export function tokenEmbedding(gpu: Gpu, tokens: Tokens, wte: Weight): F32 {
  if (tokens.shape.length !== 2) throw new ShapeError(`tokenEmbedding: tokens must have shape [B×T], got ${tokens}`);
  return gatherRows(gpu, wte, tokens.reshape([tokens.size]));
}

/** Accumulates tokenEmbedding's gradient (dout: B·T rows) into dwte (V,C). */
export function tokenEmbeddingBackward(gpu: Gpu, dout: F32, tokens: Tokens, dwte: F32): void {
  const op = 'tokenEmbeddingBackward';
  if (tokens.shape.length !== 2) throw new ShapeError(`${op}: tokens must have shape [B×T], got ${tokens}`);
  const [B, T] = tokens.shape as [number, number];
  expect(op, 'dwte', dwte, [-1, -1]);
  const [V, C] = dwte.shape as [number, number];
  expect(op, 'dout', dout, [B * T, C]);
  noAlias(op, dwte, dout);
  wteBackward(gpu, dout, tokens, dwte, { N: B * T, T, C, V });
}
