// The Gpu in Node: Dawn (the `webgpu` package), shaders read from disk, options from the CLI's
// flags or the SEAL_* environment variables. A page makes its Gpu from navigator.gpu instead.
import { create, globals } from 'webgpu';
import { Gpu } from '../gpu/gpu.ts';
import { freemem } from 'node:os';
import { GpuUnavailableError, type AdapterSummary, type PowerPreference } from '../gpu/device.ts';
import { UserError } from '../util/errors.ts';
import { diskShaders } from './shaders.ts';

export type Backend = 'vulkan' | 'metal' | 'd3d12' | 'd3d11' | 'opengl' | 'opengles' | 'null';
export const BACKENDS: readonly Backend[] = ['vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles', 'null'];

export interface DawnOptions {
  /** Dawn backend; default: the platform's first that works. Env: SEAL_BACKEND. */
  backend?: string;
  /** Adapter name as Dawn lists it (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"). Env: SEAL_ADAPTER. */
  adapter?: string;
  /** Env: SEAL_POWER. */
  powerPreference?: PowerPreference;
  /** Extra Dawn toggles, e.g. ["enable-dawn-features=skip_validation"]. Env: SEAL_DAWN_FLAGS (space-separated). */
  dawnFlags?: string[];
  /** Reuse tensor buffers (default). Env: SEAL_POOL=0 turns it off. */
  pool?: boolean;
  /** A storage-binding limit below the adapter's, for tests (bytes). Env: SEAL_MAX_BINDING. */
  maxBinding?: number;
  /** How models store their weight matrices: f32 or f16. Env: SEAL_DTYPE. */
  dtype?: 'f32' | 'f16';
  /** GPU memory models may use, in bytes. Env: SEAL_GPU_MEMORY; default: see systemMemory. */
  memory?: number;
}

const INSTALL_HELP = `seal-webgpu needs a WebGPU adapter (Dawn on Vulkan, Metal or D3D12).
  Linux (no GPU, or headless): install Mesa's software Vulkan (lavapipe), version 23 or newer.
    Debian 12 (bookworm):  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list
                           apt-get update && apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1
    Ubuntu 24.04 / Debian 13: apt-get install mesa-vulkan-drivers libvulkan1
  Linux with a GPU: install the vendor's Vulkan driver (NVIDIA: the proprietary driver; AMD/Intel: mesa-vulkan-drivers).
  macOS: Metal is built in (macOS 13+); nothing to install.
  Windows: D3D12 is built in (Windows 10+); update the GPU driver.
  Check with: seal doctor   (choose with --backend / --adapter, or SEAL_BACKEND / SEAL_ADAPTER)`;

export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): DawnOptions {
  const o: DawnOptions = {};
  if (env.SEAL_BACKEND) o.backend = env.SEAL_BACKEND;
  if (env.SEAL_ADAPTER) o.adapter = env.SEAL_ADAPTER;
  if (env.SEAL_POWER) o.powerPreference = env.SEAL_POWER as PowerPreference;
  if (env.SEAL_DAWN_FLAGS) o.dawnFlags = env.SEAL_DAWN_FLAGS.split(/\s+/).filter(Boolean);
  if (env.SEAL_POOL === '0') o.pool = false;
  if (env.SEAL_MAX_BINDING) o.maxBinding = Number(env.SEAL_MAX_BINDING);
  if (env.SEAL_DTYPE) o.dtype = env.SEAL_DTYPE as 'f32' | 'f16';
  if (env.SEAL_GPU_MEMORY) {
    const n = Number(env.SEAL_GPU_MEMORY);
    if (!(Number.isInteger(n) && n > 0)) throw new UserError(`SEAL_GPU_MEMORY must be a whole number of bytes, got '${env.SEAL_GPU_MEMORY}'`);
    o.memory = n;
  }
  return o;
}

let globalsInstalled = false;

/** A Gpu on Dawn; without options, the SEAL_* variables choose. */
export async function dawnGpu(opts: DawnOptions = optionsFromEnv()): Promise<Gpu> {
  if (opts.backend !== undefined && !BACKENDS.includes(opts.backend as Backend)) {
    throw new GpuUnavailableError(`unknown backend '${opts.backend}': choose one of ${BACKENDS.join(', ')}`);
  }
  if (!globalsInstalled) {
    // GPUBufferUsage, GPUMapMode, ... are globals in a browser; Dawn provides them here.
    Object.assign(globalThis, globals);
    globalsInstalled = true;
  }
  const flags = [...(opts.dawnFlags ?? [])];
  if (opts.backend) flags.push(`backend=${opts.backend}`);
  if (opts.adapter) flags.push(`adapter=${opts.adapter}`);
  return Gpu.create({
    gpu: create(flags),
    shaders: diskShaders,
    backend: opts.backend ?? defaultBackend,
    ...(opts.powerPreference ? { powerPreference: opts.powerPreference } : {}),
    ...(opts.pool !== undefined ? { pool: opts.pool } : {}),
    ...(opts.maxBinding !== undefined ? { maxBinding: opts.maxBinding } : {}),
    ...(opts.dtype !== undefined ? { dtype: opts.dtype } : {}),
    availableMemory: (summary) => opts.memory ?? systemMemory(summary),
    asked: opts.backend || opts.adapter ? ` for backend=${opts.backend ?? 'any'}, adapter=${opts.adapter ?? 'any'}` : '',
    help: INSTALL_HELP,
  });
}

/**
 * The memory a model may use when known: on a CPU adapter (lavapipe, SwiftShader) the system's
 * available memory (or the process's cgroup limit if lower); WebGPU does not tell a GPU's (null).
 */
export function systemMemory(s: AdapterSummary): number | null {
  const cpu = s.isFallbackAdapter || s.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(s.description);
  if (!cpu) return null;
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 ? Math.min(freemem(), constrained) : freemem();
}

/** Dawn does not report the backend through GPUAdapterInfo; its default per platform is fixed. */
function defaultBackend(info: GPUAdapterInfo): string {
  if (process.platform === 'darwin') return 'metal';
  if (process.platform === 'win32') return 'd3d12';
  return /vulkan/i.test(info.description) ? 'vulkan' : 'vulkan (default)';
}

const QUANTIZATION = 'timestamp_quantization';

/**
 * Options whose Gpu reports GPU timestamps exactly: Dawn otherwise rounds them to 2^16 ns (65.5 µs).
 * The toggle is added to any toggles already disabled.
 */
export function exactTimestamps(o: DawnOptions): DawnOptions {
  const flags = o.dawnFlags ?? [];
  const at = flags.findIndex((f) => f.startsWith('disable-dawn-features='));
  const disabled = at >= 0 ? flags.map((f, i) => (i === at ? `${f},${QUANTIZATION}` : f)) : [...flags, `disable-dawn-features=${QUANTIZATION}`];
  return { ...o, dawnFlags: disabled };
}
