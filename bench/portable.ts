// The benchmarks that run anywhere WebGPU does — in Node on Dawn and in the playground page — so
// the two can be compared on one machine: matmul GFLOP/s (the adapter's default variant per shape)
// and tokens/s of the bundled model. No Node built-ins: web/ bundles this module.
import type { Gpu } from '../src/gpu/gpu.ts';
import { generateTokens } from '../src/model/generate.ts';
import type { LanguageModel } from '../src/model/lm.ts';
import { chooseMatmul, formatChoice, timeChoice } from '../src/ops/matmul.ts';

export interface PortableRow {
  case: string;
  value: number;
  unit: 'GFLOP/s' | 'tokens/s';
  /** The matmul variant, or the shapes timed. */
  note: string;
}

export const MATMUL_SHAPES: readonly (readonly [number, number, number])[] = [
  [128, 128, 128],
  [256, 256, 256],
  [256, 768, 768],
  [512, 512, 512],
];

/** Best of `samples` (each one sync over several calls), in ms per call. */
async function bestMs(samples: number, run: () => Promise<number>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < samples; i++) best = Math.min(best, await run());
  return best;
}

export async function portableBench(gpu: Gpu, model: LanguageModel, opts: { samples?: number; onRow?: (r: PortableRow) => void } = {}): Promise<PortableRow[]> {
  const samples = opts.samples ?? 3;
  const rows: PortableRow[] = [];
  const add = (r: PortableRow) => {
    rows.push(r);
    opts.onRow?.(r);
  };
  for (const [M, N, K] of MATMUL_SHAPES) {
    const variant = formatChoice(chooseMatmul(gpu, M, N, K));
    const ms = await bestMs(samples, () => timeChoice(gpu, variant, [M, N, K], 4));
    add({ case: `matmul ${M}×${N}×${K}`, value: (2 * M * N * K) / ms / 1e6, unit: 'GFLOP/s', note: variant });
  }
  const { nCtx, vocabSize } = model.config;
  const B = 4;
  const ids = (n: number, salt: number) => Uint32Array.from({ length: n }, (_, i) => (i * 7919 + salt) % vocabSize);
  const tokens = gpu.tensor(ids(B * nCtx, 1), [B, nCtx]);
  try {
    const forward = await bestMs(samples, async () => {
      const t0 = performance.now();
      const pass = model.forward(tokens);
      await gpu.sync();
      pass.release();
      return performance.now() - t0;
    });
    add({ case: 'model forward', value: (B * nCtx * 1000) / forward, unit: 'tokens/s', note: `${B}×${nCtx} tokens` });
  } finally {
    tokens.release();
  }
  const maxNew = 16;
  const prompts = [Array.from(ids(16, 2))];
  const gen = await bestMs(samples, async () => {
    const t0 = performance.now();
    await generateTokens(model, prompts, { maxNew, cache: true });
    return performance.now() - t0;
  });
  add({ case: 'model generate, KV cache', value: (maxNew * 1000) / gen, unit: 'tokens/s', note: `1×(16+${maxNew}) tokens` });
  return rows;
}
