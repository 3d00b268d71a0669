// The benchmark suite: GFLOP/s of our matmul variants and of peers (plain JS, TensorFlow.js on the
// same WebGPU adapter, gpu.js, onnxruntime-node) on the same machine in the same run.
//
// Our kernels are timed GPU-resident: each sample encodes several dispatches and syncs once. The
// ceiling case (independent FMA chains, no memory traffic) runs first; every matmul row of ours is
// reported as a fraction of it and against TensorFlow.js on the same adapter, from the same run.
import { Bench } from 'tinybench';
import type { Gpu } from '../src/gpu/gpu.ts';
import type { BenchRow as Base } from '../src/gpu/kernel-bench.ts';
import { adapterLabel } from '../src/gpu/device.ts';
import { dawnGpu } from '../src/io/dawn.ts';
import { tuningFromEnv } from '../src/io/tuning-cache.ts';
import { MATMUL_VARIANTS, autotuneMatmul, chooseMatmul, formatChoice, matmul, subgroupsUsable } from '../src/ops/matmul.ts';
import { ceilingCase } from './ceiling.ts';
import { loadPeers, type Peer } from './peers/peers.ts';

export interface BenchOptions {
  /** One JSON object per case on stdout instead of a table. */
  json: boolean;
  /** Only cases whose name or shape contains this text. */
  filter?: string;
  /** Fewer samples, smallest shapes, no peers beyond plain JS. */
  quick?: boolean;
  /** Adds 2048³. */
  full?: boolean;
}

interface Shape {
  label: string;
  M: number;
  K: number;
  N: number;
}

const sq = (n: number): Shape => ({ label: `${n}³`, M: n, K: n, N: n });
const SQUARE = [256, 512, 1024].map(sq);
const TRANSFORMER: Shape[] = [
  // The bundled model (width 128, V 257) on a pretraining batch of 8 × 128 tokens.
  { label: 'bundled qkv 1024×128×384', M: 1024, K: 128, N: 384 },
  { label: 'bundled mlp up 1024×128×512', M: 1024, K: 128, N: 512 },
  { label: 'bundled mlp down 1024×512×128', M: 1024, K: 512, N: 128 },
  { label: 'bundled logits 1024×128×257', M: 1024, K: 128, N: 257 },
  // GPT-2 small's layers.
  { label: 'attn proj 64×768×768', M: 64, K: 768, N: 768 },
  { label: 'mlp up 256×768×3072', M: 256, K: 768, N: 3072 },
  { label: 'mlp down 256×3072×768', M: 256, K: 3072, N: 768 },
];

/** A case slower than this per matmul is measured once, and skipped for larger shapes. */
const SLOW_MS = 500;

/** The peer every row of ours is compared with: the other WebGPU implementation on the same adapter. */
const TFJS = 'TensorFlow.js webgpu';

/** A matmul row: every case has a FLOP count. */
export type BenchRow = Base & { gflops: number };

export async function runBench(opts: BenchOptions): Promise<void> {
  const gpu = await dawnGpu();
  const adapter = adapterLabel(gpu.summary);
  const say = (s: string) => {
    if (!opts.json) console.log(s);
  };
  try {
    const tuning = await autotuneMatmul(gpu, tuningFromEnv(gpu.summary));
    say(`adapter: ${adapter}`);
    say(`matmul choice per shape class: ${Object.entries(tuning).map(([c, t]) => `${c}=${t.choice} (${t.source})`).join(', ')}`);
    const peers = opts.quick ? [{ peer: (await import('./peers/peers.ts')).plainJs }] : await loadPeers();
    for (const p of peers) {
      if ('missing' in p) say(`peer ${p.name} not available (${p.missing}); install peers with: npm --prefix bench/peers install`);
    }
    const shapes = [...(opts.quick ? SQUARE.slice(0, 2) : SQUARE), ...(opts.full ? [sq(2048)] : []), ...(opts.quick ? TRANSFORMER.slice(0, 1) : TRANSFORMER)].filter(
      (s) => !opts.filter || s.label.includes(opts.filter) || `${s.M}×${s.K}×${s.N}`.includes(opts.filter),
    );
    const variants = ['auto', ...Object.keys(MATMUL_VARIANTS).filter((v) => !MATMUL_VARIANTS[v as keyof typeof MATMUL_VARIANTS].subgroups || subgroupsUsable(gpu))];
    const tooSlow = new Map<string, number>(); // case name → flops at which it passed SLOW_MS
    const rows: BenchRow[] = [];
    const emit = (r: BenchRow) => {
      rows.push(r);
      if (opts.json) console.log(JSON.stringify(r));
    };
    const line = (r: BenchRow) =>
      say(`  ${r.name.padEnd(34)} ${r.gflops.toFixed(2).padStart(8)} GFLOP/s  ${r.ms.toFixed(2).padStart(9)} ms${r.ceilingFraction !== undefined ? `  ${(100 * r.ceilingFraction).toFixed(0).padStart(3)}% of ceiling` : ''}${r.note ? `  (${r.note})` : ''}`);
    // The ceiling first: every matmul row is a fraction of it.
    let c0: ReturnType<typeof ceilingCase> | undefined;
    const cm = await measure(async () => (c0 = ceilingCase(gpu)), opts.quick ?? false);
    const ceiling: BenchRow = { name: 'ceiling: independent vec4 FMA chains', kind: 'ceiling', shape: 'no memory traffic', ms: cm.ms, gflops: c0!.flops / cm.ms / 1e6, adapter };
    say(`\nceiling`);
    emit(ceiling);
    line(ceiling);
    for (const s of shapes) {
      const shape = `${s.M}×${s.K}×${s.N}`;
      const flops = 2 * s.M * s.K * s.N;
      say(`\n${s.label}  (M×K×N = ${shape})`);
      const cases: { name: string; peer: boolean; prepare: () => Promise<{ run: (reps: number) => Promise<void>; dispose: () => void }> }[] = [
        ...variants.map((v) => ({
          name: v === 'auto' ? `seal ${formatChoice(chooseMatmul(gpu, s.M, s.N, s.K))} (auto)` : `seal ${v}`,
          peer: false,
          prepare: async () => oursPrepared(gpu, s, v === 'auto' ? undefined : v),
        })),
        ...peers.flatMap((p) => ('peer' in p ? [{ name: p.peer.name, peer: true, prepare: () => p.peer.prepare(s.M, s.K, s.N) }] : [])),
      ];
      const here: BenchRow[] = [];
      for (const c of cases) {
        const slowAt = tooSlow.get(c.name.replace(/ \(auto\)$/, ''));
        if (slowAt !== undefined && flops > slowAt) {
          say(`  ${c.name.padEnd(34)} skipped (over ${SLOW_MS} ms at a smaller shape)`);
          continue;
        }
        const r = await measure(c.prepare, opts.quick ?? false);
        if (r.ms > SLOW_MS) tooSlow.set(c.name, flops);
        const gflops = flops / r.ms / 1e6;
        const row: BenchRow = {
          name: c.name,
          kind: c.peer ? 'peer' : 'ours',
          shape,
          ms: r.ms,
          gflops,
          adapter,
          ...(c.peer ? {} : { ceilingFraction: gflops / ceiling.gflops }),
          ...(r.note ? { note: r.note } : {}),
        };
        here.push(row);
        line(row);
      }
      // vsTfjs needs the peer's row, measured after ours: a shape's rows are emitted together.
      const tfjs = here.find((r) => r.name === TFJS);
      for (const r of here) emit(r.kind === 'ours' && tfjs ? { ...r, vsTfjs: r.gflops / tfjs.gflops } : r);
      const ours = here.filter((r) => r.kind === 'ours');
      const best = ours.reduce((a, b) => (b.gflops > a.gflops ? b : a), ours[0]!);
      for (const p of here.filter((r) => r.kind === 'peer')) say(`  ${best.name} vs ${p.name}: ${(best.gflops / p.gflops).toFixed(1)}×`);
    }
  } finally {
    gpu.destroy();
  }
}

/** GPU-resident timing of one variant: `reps` matmuls encoded back to back, one sync. */
function oursPrepared(gpu: Gpu, s: Shape, variant: string | undefined) {
  const r = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const a = gpu.tensor(r(s.M * s.K), [s.M, s.K]);
  const b = gpu.tensor(r(s.K * s.N), [s.K, s.N]);
  const out = gpu.empty([s.M, s.N]);
  return {
    async run(reps: number) {
      for (let i = 0; i < reps; i++) matmul(gpu, a, b, { out, variant });
      await gpu.sync();
    },
    dispose: () => [a, b, out].forEach((t) => t.release()),
  };
}

/**
 * ms per matmul: a warm-up run, a timed run that sizes `reps` (~0.2 s a sample), then tinybench's
 * median sample (other processes on a shared machine make slow outliers, never fast ones).
 */
async function measure(prepare: () => ReturnType<Peer['prepare']>, quick: boolean): Promise<{ ms: number; note?: string }> {
  const c = await prepare();
  try {
    await c.run(1); // compiles pipelines, warms caches
    const t0 = performance.now();
    await c.run(1);
    const second = performance.now() - t0;
    if (second > SLOW_MS) return { ms: second, note: 'one run' };
    // Several matmuls per sample keep dispatch and sync overhead out of the number; at most ~0.3 s
    // of GPU work per submit keeps single submissions moderate on software rasterisers.
    const reps = Math.max(1, Math.min(16, Math.floor(200 / Math.max(second, 0.01))));
    const bench = new Bench({ time: quick ? 200 : 1000, iterations: quick ? 2 : 4, warmup: false });
    bench.add('case', () => c.run(reps));
    await bench.run();
    const task = bench.tasks[0]!;
    const res = task.result as { latency?: { p50: number }; error?: unknown };
    if (!res.latency) throw new Error(`benchmark failed: ${String(res.error)}`);
    return { ms: res.latency.p50 / reps };
  } finally {
    c.dispose();
  }
}
