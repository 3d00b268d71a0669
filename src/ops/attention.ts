// Causal multi-head self-attention over GPT-2's fused qkv (B,T,3C) as batched matmuls: per
// (batch, head), scores = q·kᵀ/√HD, a causal softmax row kernel, out = att·v; backward dv = attᵀ·dout,
// datt = dout·vᵀ, the softmax backward, dq = dscores·k/√HD, dk = dscoresᵀ·q/√HD. The matmul kernel
// reads q, k, v (and writes out, dq, dk, dv) in place through strides: head h of part P at column
// P·C + h·HD of each row. Forward saves the probabilities att (B,NH,T,T); backward accumulates (+=)
// into dqkv, as llm.c does, or returns a fresh one (the gradient convention, docs/ARCHITECTURE.md).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias } from './check.ts';
import { matmulStrided, type Gemm, type StridedOptions } from './matmul.ts';

const WG = 64;
const spec = (entry: string): KernelSpec => ({ shader: 'attention.wgsl', entry, params: ['rows:u32', 'T:u32'], constants: { WG } });
const SOFTMAX = spec('softmax');
const SOFTMAX_BACKWARD = spec('softmax_backward');

function dims(op: string, qkv: Tensor, NH: number) {
  if (qkv.shape.length !== 3 || qkv.shape[2]! % 3 !== 0) throw new ShapeError(`${op}: qkv must have shape [B×T×3C], got ${qkv}`);
  const [B, T, C3] = qkv.shape as [number, number, number];
  const C = C3 / 3;
  if (!Number.isInteger(NH) || NH < 1 || C % NH !== 0) throw new ShapeError(`${op}: C = ${C} must split into NH = ${NH} heads`);
  expect(op, 'qkv', qkv, [B, T, 3 * C]);
  return { B, T, C, NH, HD: C / NH, scale: 1 / Math.sqrt(C / NH) };
}

type Dims = ReturnType<typeof dims>;

/** A (batch, head) matrix inside a tensor: start, batch and head strides, row and column strides. */
interface View {
  o: number;
  sb: number;
  sh: number;
  row: number;
  col: number;
}

// Head h of qkv's part `part` (0 q, 1 k, 2 v) as a [T, HD] matrix, or transposed ([HD, T]).
const head = (d: Dims, part: number, transposed = false): View => ({ o: part * d.C, sb: d.T * 3 * d.C, sh: d.HD, row: transposed ? 1 : 3 * d.C, col: transposed ? 3 * d.C : 1 });
// Head h of a (B,T,C) tensor (out, dout) as [T, HD].
const headOf = (d: Dims): View => ({ o: 0, sb: d.T * d.C, sh: d.HD, row: d.C, col: 1 });
// The (b,h) square of a (B,NH,T,T) tensor, or its transpose.
const square = (d: Dims, transposed = false): View => ({ o: 0, sb: d.NH * d.T * d.T, sh: d.T * d.T, row: transposed ? 1 : d.T, col: transposed ? d.T : 1 });

/** C(b,h) = alpha·A(b,h)·B(b,h) (+= with accumulate) for every batch b and head h: one dispatch. */
function product(gpu: Gpu, d: Dims, label: string, [A, a]: [Tensor, View], [B, b]: [Tensor, View], [C, c]: [Tensor, View], M: number, N: number, K: number, opts: StridedOptions) {
  const g: Gemm = {
    M, N, K, batch: d.B, inner: d.NH,
    oA: a.o, sAb: a.sb, sAh: a.sh, sAi: a.row, sAk: a.col,
    oB: b.o, sBb: b.sb, sBh: b.sh, sBk: b.row, sBj: b.col,
    oC: c.o, sCb: c.sb, sCh: c.sh, sCi: c.row,
  };
  matmulStrided(gpu, label, A, B, C, g, opts);
}

export interface AttentionOut {
  out: Tensor;
  /** Softmax probabilities (B,NH,T,T), zero above the diagonal; backward needs them. */
  att: Tensor;
}

/** out (B,T,C) = softmax(q·kᵀ/√HD, causal)·v per head. */
export function attentionForward(gpu: Gpu, qkv: Tensor, NH: number): AttentionOut {
  const d = dims('attentionForward', qkv, NH);
  const { B, T, C, HD } = d;
  const out = gpu.empty([B, T, C]);
  const att = gpu.empty([B, NH, T, T]);
  product(gpu, d, 'attention q·kᵀ', [qkv, head(d, 0)], [qkv, head(d, 1, true)], [att, square(d)], T, T, HD, { alpha: d.scale, lowerC: true });
  gpu.dispatch(SOFTMAX, { params: { rows: B * NH * T, T }, tensors: [att], workgroups: gpu.grid(B * NH * T, WG), label: 'attention softmax' });
  product(gpu, d, 'attention att·v', [att, square(d)], [qkv, head(d, 2)], [out, headOf(d)], T, HD, T, { triangle: 'lower' });
  return { out, att };
}

/** Gradient wrt qkv, accumulated into `dqkv` when given (+=). */
export function attentionBackward(gpu: Gpu, dout: Tensor, qkv: Tensor, att: Tensor, NH: number, dqkv?: Tensor): Tensor {
  const op = 'attentionBackward';
  const d = dims(op, qkv, NH);
  const { B, T, C, HD } = d;
  expect(op, 'dout', dout, [B, T, C]);
  expect(op, 'att', att, [B, NH, T, T]);
  const grad = dqkv ?? gpu.zeros(qkv.shape);
  expect(op, 'dqkv', grad, qkv.shape);
  noAlias(op, grad, dout, qkv, att);
  const into = (part: number): [Tensor, View] => [grad, head(d, part)];
  // dv += attᵀ·dout (attᵀ is zero below its diagonal)
  product(gpu, d, 'attention dv', [att, square(d, true)], [dout, headOf(d)], into(2), T, HD, T, { accumulate: true, triangle: 'upper' });
  // datt = dout·vᵀ, then d(scores) in place
  const ds = gpu.empty([B, NH, T, T], 'f32', 'attention.dscores');
  product(gpu, d, 'attention datt', [dout, headOf(d)], [qkv, head(d, 2, true)], [ds, square(d)], T, T, HD, { lowerC: true });
  gpu.dispatch(SOFTMAX_BACKWARD, { params: { rows: B * NH * T, T }, tensors: [att, ds], workgroups: gpu.grid(B * NH * T, WG), label: 'attention softmax backward' });
  // dq += dscores·k/√HD, dk += dscoresᵀ·q/√HD
  product(gpu, d, 'attention dq', [ds, square(d)], [qkv, head(d, 1)], into(0), T, HD, T, { alpha: d.scale, accumulate: true, triangle: 'lower' });
  product(gpu, d, 'attention dk', [ds, square(d, true)], [qkv, head(d, 0)], into(1), T, HD, T, { alpha: d.scale, accumulate: true, triangle: 'upper' });
  ds.release();
  return grad;
}
