// `seal bench --kernel FILE.wgsl`: times a user's own compute kernel on this adapter (gpu/kernel-bench.ts)
// and prints one row of the bench schema, naming the adapter and how the time was taken.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { adapterLabel } from '../gpu/device.ts';
import { benchKernel, type BenchRow, type Timing } from '../gpu/kernel-bench.ts';
import { dawnGpu, exactTimestamps, type DawnOptions } from '../io/dawn.ts';
import { UserError } from '../util/errors.ts';

export interface KernelBenchCliOptions {
  kernel: string;
  entry: string;
  dispatch: string;
  buffers: string;
  constants?: string;
  flops?: number;
  reps: number;
  timing: 'auto' | Timing;
  name?: string;
  json?: boolean;
}


/** `x`, `x,y` or `x,y,z` workgroup counts (missing ones are 1). */
export function parseDispatch(s: string): [number, number, number] {
  const n = s.split(',').map((x) => Number(x.trim()));
  if (n.length < 1 || n.length > 3 || n.some((x) => !Number.isInteger(x) || x < 1)) throw new UserError(`--dispatch ${s}: one to three positive integers, x[,y[,z]]`);
  return [n[0]!, n[1] ?? 1, n[2] ?? 1];
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Buffer sizes, comma-separated: bytes (`4096`, `64k`, `4m`: KiB and MiB) or a shape of 4-byte
 * elements (`1024x1024`: 4 MiB).
 */
export function parseBuffers(s: string): number[] {
  return s.split(',').map((item) => {
    const t = item.trim().toLowerCase();
    if (/^\d+(x\d+)+$/.test(t)) return 4 * t.split('x').reduce((p, d) => p * Number(d), 1);
    const sized = /^(\d+)([kmg]?)$/.exec(t);
    if (sized) return Number(sized[1]) * UNITS[sized[2]!]!;
    throw new UserError(`--buffers: '${item}' is not a size (bytes like 4096, 64k, 4m; or a shape of f32 elements like 1024x1024)`);
  });
}

/** NAME=value,… override constants. */
export function parseConstants(s: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of s ? s.split(',') : []) {
    const m = /^\s*([A-Za-z_]\w*)\s*=\s*(-?[\d.e+-]+)\s*$/.exec(item);
    if (!m || !Number.isFinite(Number(m[2]))) throw new UserError(`--constants: '${item}' is not NAME=number`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

export async function kernelBenchCommand(dev: DawnOptions, o: KernelBenchCliOptions): Promise<BenchRow> {
  const code = await readFile(o.kernel, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UserError(`--kernel ${o.kernel}: cannot read it (${e.code ?? e.message})`);
  });
  const dispatch = parseDispatch(o.dispatch);
  const buffers = parseBuffers(o.buffers);
  const constants = parseConstants(o.constants);
  const gpu = await dawnGpu(exactTimestamps(dev));
  try {
    const t = await benchKernel(gpu, { code, source: o.kernel, entry: o.entry, dispatch, buffers, constants, reps: o.reps, timing: o.timing });
    const row: BenchRow = {
      name: o.name ?? `${basename(o.kernel)}:${o.entry}`,
      kind: 'ours',
      shape: `dispatch ${dispatch.join('×')}${Object.keys(constants).length ? ` ${Object.entries(constants).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`,
      ms: t.ms,
      gflops: o.flops === undefined ? null : o.flops / t.ms / 1e6,
      adapter: adapterLabel(gpu.summary),
      timing: t.timing,
    };
    if (o.json) console.log(JSON.stringify(row));
    else {
      console.log(`adapter  ${row.adapter}`);
      console.log(`kernel   ${row.name}  ${row.shape}, ${buffers.length} buffer(s) of ${buffers.join(', ')} bytes`);
      console.log(`time     ${t.ms.toFixed(4)} ms median, ${t.minMs.toFixed(4)} ms fastest, over ${t.samples.length} dispatches (${t.timing === 'gpu-timestamps' ? 'GPU timestamps: the pass alone' : 'wall clock around submit + onSubmittedWorkDone: includes the submit and the wait'})`);
      console.log(`rate     ${row.gflops === null ? '— (give --flops for GFLOP/s)' : `${row.gflops.toFixed(2)} GFLOP/s`}`);
    }
    return row;
  } finally {
    gpu.destroy();
  }
}
