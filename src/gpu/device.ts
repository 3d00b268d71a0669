// Adapter and device acquisition through Dawn (the `webgpu` package).
import { create, globals } from 'webgpu';
import { UserError } from '../util/errors.ts';

export type Backend = 'vulkan' | 'metal' | 'd3d12' | 'd3d11' | 'opengl' | 'opengles' | 'null';
export const BACKENDS: readonly Backend[] = ['vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles', 'null'];
export type PowerPreference = 'low-power' | 'high-performance';

export interface DeviceOptions {
  /** Dawn backend; default: the platform's first that works. Env: SEAL_BACKEND. */
  backend?: string;
  /** Adapter name as Dawn lists it (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"). Env: SEAL_ADAPTER. */
  adapter?: string;
  /** Env: SEAL_POWER. */
  powerPreference?: PowerPreference;
  /** Extra Dawn toggles, e.g. ["enable-dawn-features=skip_validation"]. Env: SEAL_DAWN_FLAGS (space-separated). */
  dawnFlags?: string[];
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  isFallbackAdapter: boolean;
}

export class GpuUnavailableError extends UserError {
  override name = 'GpuUnavailableError';
}

/** Limits we raise to whatever the adapter offers: large weights and wide workgroups need them. */
export const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
] as const;

/** Optional features we use when present. */
const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'timestamp-query', 'subgroups'];

const INSTALL_HELP = `seal-webgpu needs a WebGPU adapter (Dawn on Vulkan, Metal or D3D12).
  Linux (no GPU, or headless): install Mesa's software Vulkan (lavapipe), version 23 or newer.
    Debian 12 (bookworm):  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list
                           apt-get update && apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1
    Ubuntu 24.04 / Debian 13: apt-get install mesa-vulkan-drivers libvulkan1
  Linux with a GPU: install the vendor's Vulkan driver (NVIDIA: the proprietary driver; AMD/Intel: mesa-vulkan-drivers).
  macOS: Metal is built in (macOS 13+); nothing to install.
  Windows: D3D12 is built in (Windows 10+); update the GPU driver.
  Check with: seal doctor   (choose with --backend / --adapter, or SEAL_BACKEND / SEAL_ADAPTER)`;

export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): DeviceOptions {
  const o: DeviceOptions = {};
  if (env.SEAL_BACKEND) o.backend = env.SEAL_BACKEND;
  if (env.SEAL_ADAPTER) o.adapter = env.SEAL_ADAPTER;
  if (env.SEAL_POWER) o.powerPreference = env.SEAL_POWER as PowerPreference;
  if (env.SEAL_DAWN_FLAGS) o.dawnFlags = env.SEAL_DAWN_FLAGS.split(/\s+/).filter(Boolean);
  return o;
}

let globalsInstalled = false;

/**
 * Dawn instances stay referenced from here until released. dawn.node's device keeps only a raw
 * pointer to its instance: if the object create() returned is garbage-collected while a device is
 * in use, the next event poll is a use-after-free that kills the process (docs/lavapipe-crash.md).
 */
const liveInstances = new Set<GPU>();

export function releaseInstance(gpu: GPU): void {
  liveInstances.delete(gpu);
}

export interface Acquired {
  /** The Dawn instance; kept alive until releaseInstance(). */
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  summary: AdapterSummary;
}

export async function acquireDevice(opts: DeviceOptions = {}): Promise<Acquired> {
  if (opts.backend !== undefined && !BACKENDS.includes(opts.backend as Backend)) {
    throw new GpuUnavailableError(`unknown backend '${opts.backend}': choose one of ${BACKENDS.join(', ')}`);
  }
  if (opts.powerPreference !== undefined && !['low-power', 'high-performance'].includes(opts.powerPreference)) {
    throw new GpuUnavailableError(`unknown power preference '${opts.powerPreference}': choose low-power or high-performance`);
  }
  if (!globalsInstalled) {
    // GPUBufferUsage, GPUMapMode, ... are globals in a browser; Dawn provides them here.
    Object.assign(globalThis, globals);
    globalsInstalled = true;
  }
  const flags = [...(opts.dawnFlags ?? [])];
  if (opts.backend) flags.push(`backend=${opts.backend}`);
  if (opts.adapter) flags.push(`adapter=${opts.adapter}`);
  let gpu: GPU | null = create(flags);
  liveInstances.add(gpu);
  const what = opts.backend || opts.adapter ? ` for backend=${opts.backend ?? 'any'}, adapter=${opts.adapter ?? 'any'}` : '';
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : {});
  } catch (e) {
    liveInstances.delete(gpu!);
    gpu = null;
    throw new GpuUnavailableError(`no WebGPU adapter found${what}: ${(e as Error).message.trim()}\n\n${INSTALL_HELP}`);
  }
  if (!adapter) {
    liveInstances.delete(gpu!);
    gpu = null;
    throw new GpuUnavailableError(`no WebGPU adapter found${what}\n\n${INSTALL_HELP}`);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name] as number;
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter!.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const summary: AdapterSummary = {
    vendor: info.vendor || 'unknown',
    architecture: info.architecture || 'unknown',
    device: info.device || '',
    description: info.description || '',
    backend: opts.backend ?? backendFromDescription(info),
    isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
  };
  return { gpu: gpu!, adapter, device, summary };
}

function backendFromDescription(info: GPUAdapterInfo): string {
  // Dawn does not report the backend through GPUAdapterInfo; its default per platform is fixed.
  if (process.platform === 'darwin') return 'metal';
  if (process.platform === 'win32') return 'd3d12';
  return /vulkan/i.test(info.description) ? 'vulkan' : 'vulkan (default)';
}
