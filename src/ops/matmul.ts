// The matmul family: C = op(A)·op(B) with op = identity or transpose, batched over a leading dim,
// with fused epilogues (alpha, bias row, GELU, accumulate into C) and split-K. The kernel variant
// is chosen per (adapter, shape class): built-in defaults, or a measured choice (autotuneMatmul).
// Gradient convention (docs/ARCHITECTURE.md): matmulBackward adds dW and dbias into the buffers it
// is given, always; dx, which it is not given, comes back as a fresh tensor.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor, Weight } from '../gpu/tensor.ts';
import { fastest, type TuningEntry, type TuningStore } from '../gpu/autotune.ts';
import { ShapeError, expect, noAlias } from './check.ts';

const PARAMS = ['M:u32', 'N:u32', 'K:u32', 'sAb:u32', 'sAi:u32', 'sAk:u32', 'sBb:u32', 'sBk:u32', 'sBj:u32', 'splits:u32', 'kChunk:u32', 'alpha:f32', 'flags:u32'];
const FLAG = { bias: 1, gelu: 2, accumulate: 4 };
const WG = 64;

interface Variant {
  spec: KernelSpec;
  /** Rows and columns of C one workgroup covers. */
  rows: number;
  cols: number;
  subgroups?: boolean;
}

const regs = (rb: number): Variant => ({ spec: { shader: 'matmul.wgsl', entry: 'regs', params: PARAMS, constants: { WG, RB: rb } }, rows: rb, cols: 4 * WG });
const subgroup = (rb: number): Variant => ({
  spec: { shader: 'matmul-subgroups.wgsl', entry: 'regs_subgroup', params: PARAMS, constants: { WG, RB: rb } },
  rows: rb,
  cols: 4 * WG,
  subgroups: true,
});
const tiled = (ts: number, tm: number): Variant => ({
  spec: { shader: 'matmul.wgsl', entry: 'tiled', params: PARAMS, constants: { TS: ts, TM: tm, TK: 16 } },
  rows: ts * tm,
  cols: ts * tm,
});

/** Every kernel variant, by name. `regs-rb4` doubles as the small-M path (M ≤ 4, one row block). */
export const MATMUL_VARIANTS = {
  'regs-rb4': regs(4),
  'regs-rb8': regs(8),
  'regs-rb16': regs(16),
  'subgroup-rb8': subgroup(8),
  'subgroup-rb16': subgroup(16),
  'tiled-8x4': tiled(8, 4),
  'tiled-16x4': tiled(16, 4),
} satisfies Record<string, Variant>;
export type MatmulVariant = keyof typeof MATMUL_VARIANTS;
const REDUCE: KernelSpec = { shader: 'matmul.wgsl', entry: 'reduce_splits', params: PARAMS, constants: { WG } };

/** A variant and a split-K factor, written `variant` or `variant/splitS` (e.g. `regs-rb8/split4`). */
export interface MatmulChoice {
  variant: MatmulVariant;
  splits: number;
}

export function parseChoice(s: string): MatmulChoice {
  const [v, split] = s.split('/');
  const splits = split === undefined ? 1 : Number(/^split(\d+)$/.exec(split)?.[1]);
  if (!(v! in MATMUL_VARIANTS) || !Number.isInteger(splits) || splits < 1) throw new Error(`matmul: unknown variant '${s}' (known: ${Object.keys(MATMUL_VARIANTS).join(', ')}, optionally /splitN)`);
  return { variant: v as MatmulVariant, splits };
}

export const formatChoice = (c: MatmulChoice) => (c.splits > 1 ? `${c.variant}/split${c.splits}` : c.variant);

export interface MatmulOptions {
  /** a is stored [.., K, M] and used transposed. */
  transA?: boolean;
  /** b is stored [.., N, K] and used transposed. */
  transB?: boolean;
  alpha?: number;
  /** [N], added to every row. */
  bias?: Tensor;
  /** Apply GELU (tanh form) after alpha and bias. */
  gelu?: boolean;
  /** out += result (out required), e.g. to accumulate gradients. */
  accumulate?: boolean;
  out?: Tensor;
  /** Force a kernel variant (and split-K), e.g. for tests and benchmarks. */
  variant?: MatmulVariant | string;
}

/** What a dispatch needs: sizes and element strides of both operands (0 batch stride broadcasts). */
interface Gemm {
  M: number;
  N: number;
  K: number;
  batch: number;
  sAb: number;
  sAi: number;
  sAk: number;
  sBb: number;
  sBk: number;
  sBj: number;
}

/**
 * C = op(A)·op(B). A is [M,K] or [batch,M,K] ([K,M] / [batch,K,M] with transA), B is [K,N] or
 * [batch,K,N] ([N,K] / [batch,N,K] with transB); a 2-D operand is shared by every batch. The result
 * is [M,N], or [batch,M,N] when either operand is batched.
 */
export function matmul(gpu: Gpu, a: Tensor, b: Weight, opts: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  for (const [what, t] of [['a', a], ['b', b]] as const) {
    if (t.shape.length !== 2 && t.shape.length !== 3) throw new ShapeError(`${op}: ${what} must be 2-D or 3-D (batched), got ${t}`);
  }
  const batch = a.shape.length === 3 ? a.shape[0]! : b.shape.length === 3 ? b.shape[0]! : 1;
  const batched = a.shape.length === 3 || b.shape.length === 3;
  const lead = (t: Weight) => (t.shape.length === 3 ? [batch] : []);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [M, K] = opts.transA ? [ac, ar] : [ar, ac];
  expect(op, 'a', a, [...lead(a), ar, ac]);
  const N = opts.transB ? b.shape.at(-2)! : b.shape.at(-1)!;
  expect(op, 'b', b, [...lead(b), ...(opts.transB ? [N, K] : [K, N])], b.dtype === 'f16' ? 'f16' : 'f32');
  const g: Gemm = {
    M, N, K, batch,
    sAb: a.shape.length === 3 ? M * K : 0,
    sAi: opts.transA ? 1 : K,
    sAk: opts.transA ? M : 1,
    sBb: b.shape.length === 3 ? K * N : 0,
    sBk: opts.transB ? 1 : N,
    sBj: opts.transB ? K : 1,
  };
  return gemm(gpu, op, a, b, g, batched ? [batch, M, N] : [M, N], opts);
}

/**
 * Backward of y = x·W (+ bias) for x [M,K] or [B,T,K] (rows flattened), W [K,N]: adds dW += xᵀ·dy
 * into `dw` and dbias += Σ_rows dy into `dbias`, each when given (a frozen weight needs none);
 * returns a fresh dx = dy·Wᵀ.
 */
export function matmulBackward(gpu: Gpu, x: Tensor, w: Weight, dy: Tensor, grads: { dw?: Tensor; dbias?: Tensor; variant?: string }): Tensor {
  const op = 'matmulBackward';
  if (w.shape.length !== 2) throw new ShapeError(`${op}: w must be 2-D [K×N], got ${w}`);
  if (grads.dw) expect(op, 'dw', grads.dw, w.shape);
  const [K, N] = w.shape as [number, number];
  if (x.shape.length < 2 || x.shape.length > 3) throw new ShapeError(`${op}: x must be 2-D or 3-D, got ${x}`);
  expect(op, 'x', x, [...x.shape.slice(0, -1).map(() => -1), K]);
  expect(op, 'dy', dy, [...x.shape.slice(0, -1), N]);
  const rows = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
  const variant = grads.variant;
  // dx[rows,K] = dy[rows,N]·W[K,N]ᵀ
  const dx = gemm(gpu, op, dy, w, { M: rows, N: K, K: N, batch: 1, sAb: 0, sAi: N, sAk: 1, sBb: 0, sBk: 1, sBj: N }, x.shape, { variant });
  // dW[K,N] += x[rows,K]ᵀ·dy[rows,N]
  if (grads.dw) gemm(gpu, op, x, dy, { M: K, N, K: rows, batch: 1, sAb: 0, sAi: 1, sAk: K, sBb: 0, sBk: N, sBj: 1 }, [K, N], { out: grads.dw, accumulate: true, variant });
  if (!grads.dbias) return dx;
  // dbias[1,N] += 1[1,rows]·dy[rows,N]: A is one 1.0 read through zero strides.
  const one = gpu.constant(1);
  gemm(gpu, op, one, dy, { M: 1, N, K: rows, batch: 1, sAb: 0, sAi: 0, sAk: 0, sBb: 0, sBk: N, sBj: 1 }, [N], { out: grads.dbias, accumulate: true, variant });
  return dx;
}

function gemm(gpu: Gpu, op: string, a: Tensor, b: Weight, g: Gemm, outShape: readonly number[], opts: MatmulOptions): Tensor {
  const { M, N, K, batch } = g;
  if (opts.bias) {
    expect(op, 'bias', opts.bias, [N]);
    if (batch * M > 0 && opts.bias === opts.out) throw new Error(`${op}: out must not be the bias tensor`);
  }
  if (opts.accumulate && !opts.out) throw new Error(`${op}: accumulate needs the tensor to add into (out)`);
  const out = opts.out ?? gpu.empty(outShape);
  expect(op, 'out', out, outShape);
  noAlias(op, out, a, b, ...(opts.bias ? [opts.bias] : []));
  if (out.size === 0) return out;
  const alpha = opts.alpha ?? 1;
  if (!Number.isFinite(alpha)) throw new RangeError(`${op}: alpha must be finite, got ${alpha}`);
  const flags = (opts.bias ? FLAG.bias : 0) | (opts.gelu ? FLAG.gelu : 0) | (opts.accumulate ? FLAG.accumulate : 0);
  const choice = opts.variant ? parseChoice(opts.variant) : chooseMatmul(gpu, M, N, K);
  const v = MATMUL_VARIANTS[choice.variant];
  // An f16 B (weights stored in half precision) is loaded as f32: the same kernel, another type.
  const spec: KernelSpec = b.dtype === 'f16' ? { ...v.spec, types: { b_t: 'f16' } } : v.spec;
  if (v.subgroups && !subgroupsUsable(gpu)) throw new Error(`${op}: variant ${choice.variant} needs subgroups of 8 or more lanes, which this adapter lacks`);
  // Splits beyond K would leave empty chunks; K = 0 still runs one pass so the epilogue applies.
  const splits = Math.max(1, Math.min(choice.splits, K));
  const kChunk = Math.ceil(K / splits);
  const params = { ...g, splits, kChunk, alpha, flags };
  const workgroups = [Math.ceil(N / v.cols), Math.ceil(M / v.rows), batch * splits] as const;
  const bias = opts.bias ?? a; // bound but unread without the bias flag
  if (splits === 1) {
    gpu.dispatch(spec, { params, tensors: [a, b, out, bias], workgroups, label: `${op} ${choice.variant}` });
    return out;
  }
  const partials = gpu.empty([batch * splits, M, N], 'f32', `${op} partials`);
  gpu.dispatch(spec, { params, tensors: [a, b, partials, bias], workgroups, label: `${op} ${choice.variant} split${splits}` });
  gpu.dispatch(REDUCE, { params: { ...params, K: batch }, tensors: [partials, opts.bias ?? partials, out], workgroups: gpu.grid(batch * M * N, WG), label: `${op} reduce` });
  partials.release();
  return out;
}

export function subgroupsUsable(gpu: Gpu): boolean {
  const info = gpu.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number };
  return gpu.features.has('subgroups') && (info.subgroupMinSize ?? 0) >= 8;
}

// ---- choosing a variant -------------------------------------------------------------------------

/** Shape classes the autotune measures separately, each with a representative shape (M, N, K). */
export const SHAPE_CLASSES = {
  /** Token-by-token generation: a few rows. */
  'small-m': [1, 3072, 768],
  /** Small output, long reduction (e.g. weight gradients of a short sequence). */
  'long-k': [64, 64, 4096],
  general: [256, 768, 768],
} as const satisfies Record<string, readonly [number, number, number]>;
export type ShapeClass = keyof typeof SHAPE_CLASSES;

export function shapeClass(M: number, N: number, K: number): ShapeClass {
  if (M <= 4) return 'small-m';
  if (M * N <= 128 * 128 && K >= 1024) return 'long-k';
  return 'general';
}

const isCpuAdapter = (gpu: Gpu) => gpu.summary.isFallbackAdapter || gpu.summary.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(gpu.summary.description);

/** The candidates the autotune times for a class on this adapter. */
export function candidates(gpu: Gpu, cls: ShapeClass): string[] {
  const sg = subgroupsUsable(gpu);
  const base: string[] = ['regs-rb8', 'tiled-16x4', ...(sg ? ['subgroup-rb16'] : [])];
  if (cls === 'small-m') return ['regs-rb4', 'regs-rb4/split4', 'tiled-8x4', ...(sg ? ['subgroup-rb8'] : [])];
  if (cls === 'long-k') return [...base, ...base.map((c) => `${c}/split4`), ...base.map((c) => `${c}/split16`)];
  return [...base, 'regs-rb16', 'tiled-8x4', ...(sg ? ['subgroup-rb8'] : [])];
}

/** Built-in choices: CPU rasterisers want register blocking (subgroup-shared A when possible), GPUs tiling. */
export function defaultChoice(gpu: Gpu, cls: ShapeClass): MatmulChoice {
  const cpu = isCpuAdapter(gpu);
  const general: MatmulVariant = cpu ? (subgroupsUsable(gpu) ? 'subgroup-rb16' : 'regs-rb8') : 'tiled-16x4';
  if (cls === 'small-m') return { variant: cpu ? 'regs-rb4' : 'tiled-8x4', splits: 1 };
  if (cls === 'long-k') return { variant: general, splits: cpu ? 4 : 16 };
  return { variant: general, splits: 1 };
}

const tuned = new WeakMap<Gpu, Partial<Record<ShapeClass, MatmulChoice>>>();

export function chooseMatmul(gpu: Gpu, M: number, N: number, K: number): MatmulChoice {
  const cls = shapeClass(M, N, K);
  return tuned.get(gpu)?.[cls] ?? defaultChoice(gpu, cls);
}

export interface AutotuneOptions {
  /** Off: keep the built-in defaults (SEAL_AUTOTUNE=0 in Node). */
  enabled?: boolean;
  /** Where choices are kept between runs (Node: io/tuning-cache.ts); default: in memory, this Gpu only. */
  store?: TuningStore;
  /** Measures one candidate on a class's shape, in ms; default: GPU-resident timing. Tests pass a fake. */
  time?: (choice: string, cls: ShapeClass) => Promise<number>;
  /** Measure again even if the cache has an answer. */
  force?: boolean;
}

/**
 * Loads this adapter's cached matmul choices, measuring (and caching) the classes not cached yet;
 * later matmuls on this Gpu use them. With `enabled: false` it keeps the defaults. Returns the
 * choice per class and whether it was measured, cached or a default.
 */
export async function autotuneMatmul(gpu: Gpu, opts: AutotuneOptions = {}): Promise<Record<ShapeClass, { choice: string; source: 'default' | 'cache' | 'measured' }>> {
  const result = {} as Record<ShapeClass, { choice: string; source: 'default' | 'cache' | 'measured' }>;
  const classes = Object.keys(SHAPE_CLASSES) as ShapeClass[];
  if (opts.enabled === false) {
    for (const cls of classes) result[cls] = { choice: formatChoice(defaultChoice(gpu, cls)), source: 'default' };
    return result;
  }
  const cache: TuningStore = opts.store ?? new Map<string, TuningEntry>();
  const table: Partial<Record<ShapeClass, MatmulChoice>> = {};
  const time = opts.time ?? ((c: string, cls: ShapeClass) => timeChoice(gpu, c, SHAPE_CLASSES[cls]));
  for (const cls of classes) {
    const cands = candidates(gpu, cls);
    const hit = cache.get(`matmul:${cls}`);
    const valid = hit && cands.includes(hit.choice);
    const entry = valid && !opts.force ? hit : await fastest(cands, (c) => time(c, cls));
    if (!valid || opts.force) cache.set(`matmul:${cls}`, entry);
    table[cls] = parseChoice(entry.choice);
    result[cls] = { choice: entry.choice, source: valid && !opts.force ? 'cache' : 'measured' };
  }
  tuned.set(gpu, table);
  return result;
}

/** Forgets tuned choices for this Gpu (back to defaults). */
export function resetMatmulTuning(gpu: Gpu): void {
  tuned.delete(gpu);
}

/** ms per matmul of one shape with one variant, GPU-resident: `reps` dispatches, one sync. */
export async function timeChoice(gpu: Gpu, choice: string, [M, N, K]: readonly [number, number, number], reps = 2): Promise<number> {
  const a = gpu.empty([M, K]);
  const b = gpu.empty([K, N]);
  const out = gpu.empty([M, N]);
  matmul(gpu, a, b, { out, variant: choice }); // warm-up: compiles the pipeline
  await gpu.sync();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) matmul(gpu, a, b, { out, variant: choice });
  await gpu.sync();
  const ms = (performance.now() - t0) / reps;
  for (const t of [a, b, out]) t.release();
  return ms;
}
