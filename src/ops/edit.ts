// Edit application (docs/ARCHITECTURE.md, SEAL variant A): W' = W + α·M⊙Δ written into a scratch copy, never into
// the base; edits compose in order; and the gradient wrt the action. Gradient convention
// (docs/ARCHITECTURE.md): editBackward adds into the action gradient it is given, else returns a
// fresh (zeroed, then added into) one.
//
// A mask is a list of blocks, each `runs` equal runs of `run` elements, `stride` apart, in the flat
// tensor: a row/column range of a row-major matrix is one block, a whole tensor or a flat range is
// one block with runs = 1. Kernels compute indices from four uniforms, so no index buffer is stored
// and nothing is searched. Blocks may not overlap, so ‖M⊙Δ‖ is the norm of the packed delta and
// the gather is the exact gradient.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import { numel, type F32 as Tensor, type Weight } from '../gpu/tensor.ts';
import { UserError } from '../util/errors.ts';
import { expect, noAlias } from './check.ts';
import { windowOf } from './chunks.ts';
import { convert } from './convert.ts';

const WG = 64;
const spec = (entry: string, params: string[]): KernelSpec => ({ shader: 'edit.wgsl', entry, params, constants: { WG } });
const BLOCK_PARAMS = ['start:u32', 'run:u32', 'stride:u32', 'count:u32', 'offset:u32', 'alpha:f32'];
const LOWRANK_PARAMS = ['m:u32', 'n:u32', 'r:u32', 'offset:u32', 'alpha:f32'];
const SCATTER_ADD = spec('scatter_add', BLOCK_PARAMS);
const GATHER = spec('gather', BLOCK_PARAMS);
const LOWRANK_ADD = spec('lowrank_add', LOWRANK_PARAMS);
const LOWRANK_GRAD_U = spec('lowrank_grad_u', LOWRANK_PARAMS);
const LOWRANK_GRAD_V = spec('lowrank_grad_v', LOWRANK_PARAMS);
const COMBINE = spec('combine', ['size:u32', 'start:u32', 'run:u32', 'stride:u32', 'runs:u32', 'copies:u32', 'first:u32']);

/** A mask that is malformed or reaches outside its tensor or its packed vector (from the user's mask flags). */
export class MaskError extends UserError {
  override name = 'MaskError';
}

/** Element k of the block sits at flat index start + ⌊k / run⌋·stride + k mod run. */
export interface MaskBlock {
  start: number;
  run: number;
  stride: number;
  runs: number;
}

export type Range = readonly [number, number];

/**
 * The block for rows [r0, r1) and columns [c0, c1) of a tensor seen as a row-major matrix (trailing
 * dimensions flattened into columns; a 1-D tensor is one row). Omitted ranges take everything.
 */
export function maskBlock(shape: readonly number[], rows?: Range, cols?: Range): MaskBlock {
  const R = shape.length <= 1 ? 1 : shape[0]!;
  const C = shape.length <= 1 ? numel(shape) : numel(shape.slice(1));
  const [r0, r1] = rows ?? [0, R];
  const [c0, c1] = cols ?? [0, C];
  const ok = (lo: number, hi: number, n: number) => Number.isInteger(lo) && Number.isInteger(hi) && 0 <= lo && lo <= hi && hi <= n;
  if (!ok(r0, r1, R) || !ok(c0, c1, C)) throw new MaskError(`maskBlock: rows [${r0}, ${r1}) × cols [${c0}, ${c1}) is outside a ${R}×${C} matrix`);
  return { start: r0 * C + c0, run: c1 - c0, stride: C, runs: r1 - r0 };
}

export function maskSize(mask: readonly MaskBlock[]): number {
  return mask.reduce((n, b) => n + b.run * b.runs, 0);
}

// Masks already checked, with the tensor size they were checked against: checking sorts every run.
const checkedMasks = new WeakMap<readonly MaskBlock[], number>();

function checkMask(op: string, mask: readonly MaskBlock[], size: number): void {
  if (checkedMasks.get(mask) === size) return;
  const runs: [number, number][] = [];
  mask.forEach((b, i) => {
    const fields = [b.start, b.run, b.stride, b.runs];
    if (!fields.every((x) => Number.isInteger(x) && x >= 0)) throw new MaskError(`${op}: mask block ${i} has a field that is not a non-negative integer: ${JSON.stringify(b)}`);
    if (b.run === 0 || b.runs === 0) return;
    if (b.runs > 1 && b.stride < b.run) throw new MaskError(`${op}: mask block ${i} has stride ${b.stride} < run ${b.run}, so its runs overlap`);
    const last = b.start + (b.runs - 1) * b.stride + b.run - 1;
    if (last >= size) throw new MaskError(`${op}: mask block ${i} reaches index ${last}, past the end of a tensor of ${size} elements`);
    for (let r = 0; r < b.runs; r++) runs.push([b.start + r * b.stride, b.run]);
  });
  runs.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < runs.length; i++) {
    const [prev, len] = runs[i - 1]!;
    if (runs[i]![0] < prev + len) throw new MaskError(`${op}: mask blocks overlap at index ${runs[i]![0]}`);
  }
  checkedMasks.set(mask, size);
}

/** Dense: the packed delta for this tensor is delta[offset .. offset + maskSize(mask)). */
export interface DenseEdit {
  kind: 'dense';
  mask: readonly MaskBlock[];
  delta: Tensor;
  offset?: number;
  alpha: number;
}

/** Low-rank: Δ = U·Vᵀ for a rows×cols matrix; U (rows×rank) then V (cols×rank) packed row-major in factors from offset. */
export interface LowRankEdit {
  kind: 'lowrank';
  factors: Tensor;
  offset?: number;
  rows: number;
  cols: number;
  rank: number;
  alpha: number;
}

export type Edit = DenseEdit | LowRankEdit;

/** The action tensor an edit reads its delta from. */
export const actionOf = (e: Edit): Tensor => (e.kind === 'dense' ? e.delta : e.factors);

/** How many elements of the action the edit reads. */
export const actionLength = (e: Edit): number => (e.kind === 'dense' ? maskSize(e.mask) : e.rank * (e.rows + e.cols));

/** Checks the edit's own fields and that it reads inside its action tensor. */
function checkAction(op: string, e: Edit): void {
  const action = actionOf(e);
  const name = e.kind === 'dense' ? 'delta' : 'factors';
  expect(op, name, action, action.shape);
  if (e.kind === 'lowrank') {
    const dims = [e.rows, e.cols, e.rank];
    if (!dims.every((d) => Number.isInteger(d) && d >= 0)) throw new RangeError(`${op}: rows, cols and rank must be non-negative integers, got ${dims}`);
  }
  const offset = e.offset ?? 0;
  const end = offset + actionLength(e);
  if (!Number.isInteger(offset) || offset < 0 || end > action.size) throw new MaskError(`${op}: the edit reads ${name}[${offset}, ${end}), outside ${action}`);
}

/** Checks the edit against the tensor it edits (`like`: the base, the scratch copy or dW'). */
function checkEdit(op: string, e: Edit, like: Weight, what: string): void {
  checkAction(op, e);
  if (e.kind === 'dense') checkMask(op, e.mask, like.size);
  else expect(op, what, like, [e.rows, e.cols], like.dtype);
}

/** Elements from a block's first to its last, inclusive. */
const span = (b: MaskBlock) => (b.runs === 0 || b.run === 0 ? 0 : (b.runs - 1) * b.stride + b.run);

/**
 * A block cut into pieces whose spans are at most `most` elements (a tensor over the binding limit
 * is bound a piece at a time); `at` is where a piece's elements start in the block's packed run.
 */
function pieces(b: MaskBlock, most: number): (MaskBlock & { at: number })[] {
  if (span(b) <= most) return [{ ...b, at: 0 }];
  const out: (MaskBlock & { at: number })[] = [];
  if (b.run > most) {
    for (let r = 0; r < b.runs; r++) {
      for (let a = 0; a < b.run; a += most) out.push({ start: b.start + r * b.stride + a, run: Math.min(most, b.run - a), stride: b.stride, runs: 1, at: r * b.run + a });
    }
    return out;
  }
  const per = Math.floor((most - b.run) / b.stride) + 1;
  for (let q = 0; q < b.runs; q += per) out.push({ start: b.start + q * b.stride, run: b.run, stride: b.stride, runs: Math.min(per, b.runs - q), at: q * b.run });
  return out;
}

/**
 * One dispatch per mask block (or piece of one, over the binding limit), each block reading the
 * next stretch of the packed vector. The kernel binds the packed tensor first, or the masked one
 * first (`maskedFirst`, gather).
 */
function perBlock(gpu: Gpu, kernel: KernelSpec, e: DenseEdit, alpha: number, packed: Tensor, masked: Tensor, maskedFirst: boolean): void {
  // Room for a piece once a window's start is rounded down to the offset alignment.
  const most = Math.floor(gpu.bindingLimit / 4) - gpu.limits.minStorageBufferOffsetAlignment / 4;
  let offset = e.offset ?? 0;
  for (const b of e.mask) {
    for (const piece of pieces(b, most)) {
      const count = piece.run * piece.runs;
      const m = windowOf(gpu, masked, piece.start, span(piece));
      const p = windowOf(gpu, packed, offset + piece.at, count);
      const params = { start: m.base, run: piece.run, stride: piece.stride, count, offset: p.base, alpha };
      gpu.dispatch(kernel, { params, tensors: maskedFirst ? [m.view, p.view] : [p.view, m.view], workgroups: gpu.grid(count, WG) });
    }
    offset += b.run * b.runs;
  }
}
const lowRankParams = (e: LowRankEdit, alpha: number) => ({ m: e.rows, n: e.cols, r: e.rank, offset: e.offset ?? 0, alpha });

/** target += alpha·M⊙Δ in place. */
function addScaled(gpu: Gpu, op: string, target: Tensor, e: Edit, alpha: number): Tensor {
  checkEdit(op, e, target, 'target');
  noAlias(op, target, actionOf(e));
  if (e.kind === 'lowrank') {
    gpu.dispatch(LOWRANK_ADD, { params: lowRankParams(e, alpha), tensors: [e.factors, target], workgroups: [Math.ceil(e.cols / WG), Math.ceil(e.rows / 4)] });
    return target;
  }
  perBlock(gpu, SCATTER_ADD, e, alpha, e.delta, target, false);
  return target;
}

/**
 * out = base + Σ αᵢ·Mᵢ⊙Δᵢ, edits added in order (two or more edits compose). `out` is a scratch copy
 * and must not be the base: the base is only read. The copy is f32 even where the base is stored
 * f16, so that small edits are not rounded away.
 */
export function applyEdits(gpu: Gpu, base: Weight, edits: readonly Edit[], out?: Tensor): Tensor {
  const op = 'applyEdits';
  expect(op, 'base', base, base.shape, base.dtype === 'f16' ? 'f16' : 'f32');
  const o = out ?? gpu.empty(base.shape, 'f32', `${base.label}.edited`);
  expect(op, 'out', o, base.shape);
  noAlias(op, o, base, ...edits.map(actionOf));
  for (const e of edits) checkEdit(op, e, base, 'base');
  convert(gpu, base, 'f32', o);
  for (const e of edits) addScaled(gpu, op, o, e, e.alpha);
  return o;
}

/**
 * The gradient wrt the action, given dW' (the gradient wrt the edited tensor): dense, α·dW' gathered
 * at the mask; low-rank, dU = α·dW'·V and dV = α·dW'ᵀ·U. Added into dAction (shaped like the
 * action) at the edit's offset; the rest of dAction is left as it is (zeros when allocated here).
 */
export function editBackward(gpu: Gpu, dOut: Tensor, edit: Edit, dAction?: Tensor): Tensor {
  const op = 'editBackward';
  expect(op, 'dOut', dOut, dOut.shape);
  checkEdit(op, edit, dOut, 'dOut');
  const action = actionOf(edit);
  const d = dAction ?? gpu.zeros(action.shape);
  expect(op, 'dAction', d, action.shape);
  noAlias(op, d, dOut, action);
  if (edit.kind === 'lowrank') {
    const params = lowRankParams(edit, edit.alpha);
    gpu.dispatch(LOWRANK_GRAD_U, { params, tensors: [edit.factors, dOut, d], workgroups: [Math.ceil(edit.rows / WG), edit.rank] });
    gpu.dispatch(LOWRANK_GRAD_V, { params, tensors: [edit.factors, dOut, d], workgroups: [Math.ceil(edit.cols / WG), edit.rank] });
    return d;
  }
  perBlock(gpu, GATHER, edit, edit.alpha, d, dOut, true);
  return d;
}

/**
 * G edited copies of `base` in one dispatch: copy g = base + Σ_r coefs[g, r]·dirs[r] inside the
 * mask block, dirs [R, block size] packed like the block, coefs [G, R] on the GPU. The same bits
 * as applyEdits with the R directions as R dense edits of α = coefs[g, r]. `out` is [N, ...shape]
 * (f32, as applyEdits' copies; N = G when allocated here), written at copies first .. first + G − 1.
 * Everything is bound whole, so each tensor must fit one storage binding.
 */
export function combineEdits(gpu: Gpu, base: Weight, block: MaskBlock, dirs: Tensor, coefs: Tensor, out?: Tensor, first = 0): Tensor {
  const op = 'combineEdits';
  expect(op, 'base', base, base.shape, base.dtype === 'f16' ? 'f16' : 'f32');
  checkMask(op, [block], base.size);
  const count = block.run * block.runs;
  if (coefs.shape.length !== 2) throw new RangeError(`${op}: coefs must be [copies × directions], got ${coefs}`);
  const [G, R] = coefs.shape as [number, number];
  expect(op, 'dirs', dirs, [R, count]);
  expect(op, 'coefs', coefs, [G, R]);
  const o = out ?? gpu.empty([G, ...base.shape], 'f32', `${base.label}.edited`);
  expect(op, 'out', o, [-1, ...base.shape]);
  if (!Number.isInteger(first) || first < 0 || first + G > o.shape[0]!) throw new RangeError(`${op}: copies ${first}..${first + G - 1} are outside out ${o}`);
  noAlias(op, o, base, dirs, coefs);
  if (G * base.size === 0) return o;
  // A single run's stride is never used; keep it non-zero for the kernel's division.
  const stride = block.runs > 1 ? block.stride : Math.max(block.run, 1);
  const params = { size: base.size, start: block.start, run: block.run, stride, runs: block.runs, copies: G, first };
  gpu.dispatch({ ...COMBINE, constants: { WG, ROWS: R }, types: { w_t: base.dtype } }, { params, tensors: [base, dirs, coefs, o], workgroups: gpu.grid(G * base.size, WG) });
  return o;
}
