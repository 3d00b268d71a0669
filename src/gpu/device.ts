// Adapter and device acquisition from a WebGPU instance: a page's `navigator.gpu`, or Dawn's in
// Node (io/dawn.ts makes that one, from the CLI's flags and SEAL_* variables).
import { UserError } from '../util/errors.ts';

export type PowerPreference = 'low-power' | 'high-performance';

export interface DeviceOptions {
  /** The WebGPU entry point: `navigator.gpu` in a page, a Dawn instance in Node. */
  gpu: GPU;
  powerPreference?: PowerPreference;
  /** Shown as the adapter's backend (WebGPU does not report it), or how to tell it from the adapter. */
  backend?: string | ((info: GPUAdapterInfo) => string);
  /** For "no WebGPU adapter found<asked>": what was asked for, e.g. " for backend=metal". */
  asked?: string;
  /** How to get an adapter, shown below that error. */
  help?: string;
  /**
   * A storage-binding limit below the adapter's, in bytes, so that tests run the code paths of
   * tensors split across bindings on small shapes. Env (Node): SEAL_MAX_BINDING.
   */
  maxBinding?: number;
  /** How models store their weight matrices on this device: f32, or f16 (needs shader-f16). Env (Node): SEAL_DTYPE. */
  dtype?: 'f32' | 'f16';
  /** Bytes of memory the adapter can give models, if known (WebGPU does not say); null: unknown. */
  availableMemory?: (summary: AdapterSummary) => number | null;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  isFallbackAdapter: boolean;
}

/** How results name an adapter: its description (or device) and backend. */
export const adapterLabel = (s: AdapterSummary): string => `${s.description || s.device} [${s.backend}]`;

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

/**
 * WebGPU instances stay referenced from here until released. dawn.node's device keeps only a raw
 * pointer to its instance: if the object create() returned is garbage-collected while a device is
 * in use, the next event poll is a use-after-free that kills the process (docs/lavapipe-crash.md).
 */
const liveInstances = new Set<GPU>();

export function releaseInstance(gpu: GPU): void {
  liveInstances.delete(gpu);
}

export interface Acquired {
  /** The instance; kept alive until releaseInstance(). */
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  summary: AdapterSummary;
}

export async function acquireDevice(opts: DeviceOptions): Promise<Acquired> {
  if (opts.maxBinding !== undefined && !(Number.isInteger(opts.maxBinding) && opts.maxBinding >= 256)) {
    throw new GpuUnavailableError(`the storage-binding limit (SEAL_MAX_BINDING) must be a whole number of bytes, at least 256; got ${opts.maxBinding}`);
  }
  if (opts.dtype !== undefined && opts.dtype !== 'f32' && opts.dtype !== 'f16') throw new GpuUnavailableError(`unknown dtype '${opts.dtype}': choose f32 or f16`);
  if (opts.powerPreference !== undefined && !['low-power', 'high-performance'].includes(opts.powerPreference)) {
    throw new GpuUnavailableError(`unknown power preference '${opts.powerPreference}': choose low-power or high-performance`);
  }
  const gpu = opts.gpu;
  liveInstances.add(gpu);
  const unavailable = (why: string) => {
    liveInstances.delete(gpu);
    return new GpuUnavailableError(`no WebGPU adapter found${opts.asked ?? ''}${why}${opts.help ? `\n\n${opts.help}` : ''}`);
  };
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : {});
  } catch (e) {
    throw unavailable(`: ${(e as Error).message.trim()}`);
  }
  if (!adapter) throw unavailable('');
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name] as number;
  // Kernels that need a feature (subgroups) check for it and fall back: none is required.
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter!.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const summary: AdapterSummary = {
    vendor: info.vendor || 'unknown',
    architecture: info.architecture || 'unknown',
    device: info.device || '',
    description: info.description || '',
    backend: typeof opts.backend === 'function' ? opts.backend(info) : (opts.backend ?? 'webgpu'),
    isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
  };
  return { gpu, adapter, device, summary };
}
