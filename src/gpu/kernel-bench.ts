// Timing a WGSL compute kernel of one's own on this adapter (`seal bench --kernel`, and the API's
// benchKernel). The entry point is compiled with the given override constants; storage buffers of
// the given byte sizes are bound in order at @group(0) @binding(0), (1), … and filled with
// reproducible values in [-1, 1); the dispatch is timed with GPU timestamps where the adapter has
// 'timestamp-query' (the pass alone, as the GPU measures it), otherwise by the wall clock around
// submit + onSubmittedWorkDone (which adds the submit and the wait). Dawn rounds timestamps to
// 2^16 ns (65.5 µs) unless its timestamp_quantization toggle is off: in Node, make the Gpu with
// dawnGpu(exactTimestamps(options)) (io/dawn.ts) for a kernel shorter than that.
import type { Gpu } from './gpu.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';

export type Timing = 'gpu-timestamps' | 'wall-clock';

/** One row of `seal bench --json`: the schema every suite prints (matmul, model, a user's kernel). */
export interface BenchRow {
  name: string;
  kind: 'ours' | 'peer' | 'ceiling';
  shape: string;
  ms: number;
  /** null when the FLOP count is unknown (a user's kernel without --flops). */
  gflops: number | null;
  adapter: string;
  /** How `ms` was timed, where the suite says. */
  timing?: Timing;
  /** Ours: gflops / the ceiling case's gflops in this run. */
  ceilingFraction?: number;
  /** Ours: gflops / TensorFlow.js-WebGPU's at this shape in this run, where it ran. */
  vsTfjs?: number;
  note?: string;
}

export interface KernelBenchOptions {
  /** WGSL source of the module. */
  code: string;
  /** Where the code came from, for compile errors (a file name). */
  source?: string;
  entry: string;
  /** Workgroups along x, y, z. */
  dispatch: readonly [number, number, number];
  /** Byte sizes of the storage buffers bound at @group(0) @binding(0), (1), … */
  buffers: readonly number[];
  /** Values of the module's `override` constants. */
  constants?: Readonly<Record<string, number>>;
  /** Timed dispatches, after one untimed warm-up (default 10). */
  reps?: number;
  /** 'auto' (default): GPU timestamps where the adapter has them, else the wall clock. */
  timing?: 'auto' | Timing;
}

export interface KernelTiming {
  /** Median ms per dispatch, and the fastest. */
  ms: number;
  minMs: number;
  /** Every timed dispatch, in order. */
  samples: number[];
  timing: Timing;
}

export async function benchKernel(gpu: Gpu, o: KernelBenchOptions): Promise<KernelTiming> {
  const reps = o.reps ?? 10;
  const timing = chooseTiming(gpu, o.timing ?? 'auto');
  checkOptions(gpu, o, reps);
  await gpu.sync(); // nothing of the Gpu's own batch may interleave with these submits
  const device = gpu.device;
  const source = o.source ?? 'kernel';
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: o.code, label: source });
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  if (errors.length) {
    await device.popErrorScope();
    throw new UserError(`${source}: WGSL does not compile: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
  }
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: o.entry, constants: { ...o.constants } } });
  const rng = new Rng(1);
  const buffers = o.buffers.map((bytes) => {
    const b = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(b, 0, rng.uniformArray(bytes / 4));
    return b;
  });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const invalid = await device.popErrorScope();
  const querySet = timing === 'gpu-timestamps' ? device.createQuerySet({ type: 'timestamp', count: 2 * reps }) : undefined;
  try {
    if (invalid) throw new UserError(`${source}: entry '${o.entry}' with ${o.buffers.length} storage buffer(s) at @group(0) @binding(0…${o.buffers.length - 1}): ${invalid.message.split('\n')[0]}`);
    const encode = (enc: GPUCommandEncoder, i?: number) => {
      const pass = enc.beginComputePass(querySet && i !== undefined ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } } : {});
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...o.dispatch);
      pass.end();
    };
    const submit = async (fill: (enc: GPUCommandEncoder) => void) => {
      device.pushErrorScope('validation');
      const enc = device.createCommandEncoder();
      fill(enc);
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      const e = await device.popErrorScope();
      if (e) throw new UserError(`${source}: dispatch ${o.dispatch.join('×')} of '${o.entry}': ${e.message.split('\n')[0]}`);
    };
    await submit((enc) => encode(enc)); // compiles, warms caches
    const samples = querySet ? await timestamps(gpu, querySet, reps, encode, submit) : await wallClock(reps, encode, submit);
    const sorted = [...samples].sort((a, b) => a - b);
    return { ms: sorted[Math.floor((sorted.length - 1) / 2)]!, minMs: sorted[0]!, samples, timing };
  } finally {
    querySet?.destroy();
    for (const b of buffers) b.destroy();
  }
}

type Encode = (enc: GPUCommandEncoder, i?: number) => void;
type Submit = (fill: (enc: GPUCommandEncoder) => void) => Promise<void>;

/** Every dispatch its own timed pass, all in one submit; ms from the resolved timestamp pairs. */
async function timestamps(gpu: Gpu, querySet: GPUQuerySet, reps: number, encode: Encode, submit: Submit): Promise<number[]> {
  const bytes = 16 * reps;
  const resolve = gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    await submit((enc) => {
      for (let i = 0; i < reps; i++) encode(enc, i);
      enc.resolveQuerySet(querySet, 0, 2 * reps, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, read, 0, bytes);
    });
    await read.mapAsync(GPUMapMode.READ);
    const ts = new BigUint64Array(read.getMappedRange().slice(0));
    return Array.from({ length: reps }, (_, i) => Number(ts[2 * i + 1]! - ts[2 * i]!) / 1e6);
  } finally {
    resolve.destroy();
    read.destroy();
  }
}

/** Every dispatch its own submit, timed from before the submit until the queue reports it done. */
async function wallClock(reps: number, encode: Encode, submit: Submit): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await submit((enc) => encode(enc));
    samples.push(performance.now() - t0);
  }
  return samples;
}

function chooseTiming(gpu: Gpu, want: 'auto' | Timing): Timing {
  const has = gpu.features.has('timestamp-query');
  if (want === 'gpu-timestamps' && !has) throw new UserError(`this adapter has no 'timestamp-query': time with the wall clock instead`);
  return want === 'auto' ? (has ? 'gpu-timestamps' : 'wall-clock') : want;
}

function checkOptions(gpu: Gpu, o: KernelBenchOptions, reps: number): void {
  if (!Number.isInteger(reps) || reps < 1) throw new UserError(`reps must be a positive integer, got ${reps}`);
  const maxGroups = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (o.dispatch.length !== 3 || o.dispatch.some((n) => !Number.isInteger(n) || n < 1 || n > maxGroups)) {
    throw new UserError(`dispatch ${o.dispatch.join(',')}: three workgroup counts from 1 to the adapter's maxComputeWorkgroupsPerDimension (${maxGroups})`);
  }
  if (o.buffers.length === 0) throw new UserError('a kernel needs at least one storage buffer');
  const max = gpu.limits.maxStorageBufferBindingSize;
  for (const [i, b] of o.buffers.entries()) {
    if (!Number.isInteger(b) || b < 4 || b % 4 !== 0 || b > max) {
      throw new UserError(`buffer ${i}: ${b} bytes; a storage buffer is a positive multiple of 4 bytes, at most the adapter's maxStorageBufferBindingSize (${max})`);
    }
  }
  const perStage = gpu.limits.maxStorageBuffersPerShaderStage;
  if (o.buffers.length > perStage) throw new UserError(`${o.buffers.length} buffers: the adapter binds at most ${perStage} storage buffers per shader stage`);
}
