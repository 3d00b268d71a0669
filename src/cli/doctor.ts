// `seal doctor`: what adapter this machine gives us, its limits, and a self-test against the CPU.
import { Gpu } from '../gpu/gpu.ts';
import { WANTED_LIMITS } from '../gpu/device.ts';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { matmul } from '../ops/matmul.ts';
import { add } from '../ops/elementwise.ts';
import { matmul as refMatmul } from '../reference/matmul.ts';
import * as ref from '../reference/ops.ts';
import { Rng } from '../util/random.ts';

/** The limits the device asks for, plus the uniform alignment our per-dispatch params depend on. */
const SHOWN_LIMITS = [...WANTED_LIMITS, 'minUniformBufferOffsetAlignment', 'minStorageBufferOffsetAlignment'] as const;

// Dawn prints these from native code while it opens the adapter, so no JS option or stream can hide them.
const DAWN_WARNINGS =
  '\nThe "max…BuffersPerPipelineLayout artificially reduced … to fit dynamic offset allocation limit" warnings\n' +
  "that Dawn may print first, on every command, are harmless: the driver offers more dynamic buffers than Dawn\n" +
  'allocates, Dawn lowers its own limit, and seal-webgpu uses no dynamic offsets.';

export interface SelfTestResult {
  name: string;
  maxError: number;
  ok: boolean;
}

/** Small kernels against the CPU reference: proves compile, dispatch and readback end to end. */
export async function selfTest(gpu: Gpu): Promise<SelfTestResult[]> {
  const rng = new Rng(7);
  const [M, K, N] = [37, 53, 29];
  const a = rng.uniformArray(M * K);
  const b = rng.uniformArray(K * N);
  const x = rng.uniformArray(1001);
  const y = rng.uniformArray(1001);
  const ta = gpu.tensor(a, [M, K]);
  const tb = gpu.tensor(b, [K, N]);
  const tx = gpu.tensor(x);
  const ty = gpu.tensor(y);
  const tc = matmul(gpu, ta, tb);
  const ts = add(gpu, tx, ty, 0.5);
  const [c, s] = await gpu.readMany([tc, ts]);
  for (const t of [ta, tb, tx, ty, tc, ts]) t.release();
  const err = (got: ArrayLike<number>, want: ArrayLike<number>) => {
    let m = 0;
    for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i]! - want[i]!));
    return m;
  };
  const mm = err(c!, refMatmul(a, b, M, K, N));
  const ad = err(s!, ref.add(x, y, 0.5));
  return [
    { name: `matmul ${M}×${K}×${N}`, maxError: mm, ok: mm < 1e-4 },
    { name: 'add n=1001', maxError: ad, ok: ad < 1e-6 },
  ];
}

export async function doctor(opts: DawnOptions, json: boolean): Promise<boolean> {
  const gpu = await dawnGpu(opts);
  try {
    const s = gpu.summary;
    const limits = Object.fromEntries(SHOWN_LIMITS.map((k) => [k, gpu.limits[k] as number]));
    const features = [...gpu.features].sort();
    const t0 = performance.now();
    const tests = await selfTest(gpu);
    const ms = performance.now() - t0;
    const ok = tests.every((t) => t.ok);
    if (json) {
      console.log(JSON.stringify({ adapter: s, limits, features, selfTest: tests, selfTestMs: ms, ok, peakGpuBytes: gpu.peakBytes }));
      return ok;
    }
    console.log(`adapter      ${s.description || s.device}`);
    console.log(`vendor       ${s.vendor}   architecture ${s.architecture}   backend ${s.backend}${s.isFallbackAdapter ? '   (software/fallback adapter)' : ''}`);
    console.log('limits');
    for (const [k, v] of Object.entries(limits)) console.log(`  ${k.padEnd(36)} ${v}`);
    console.log(`features     ${features.join(', ')}`);
    console.log(`self-test    (${ms.toFixed(0)} ms, first compile included)`);
    for (const t of tests) console.log(`  ${t.ok ? 'pass' : 'FAIL'}  ${t.name.padEnd(22)} max |gpu-cpu| = ${t.maxError.toExponential(2)}`);
    console.log(
      ok
        ? `\nThis machine can run seal-webgpu.${s.isFallbackAdapter ? ' (Software adapter: correct, but expect CPU speed.)' : ''}`
        : '\nThis machine can NOT run seal-webgpu correctly: the self-test disagrees with the CPU. Try another backend or adapter, or update the driver.',
    );
    console.log(DAWN_WARNINGS);
    return ok;
  } finally {
    gpu.destroy();
  }
}
