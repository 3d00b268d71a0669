// The package's main entry point, `seal-webgpu`: the GPU runtime (a Gpu on Dawn from dawnGpu;
// tensors, reads), the ops with their backward (each backward adds into the gradient buffers it is
// given: docs/ARCHITECTURE.md), and timing a WGSL kernel of one's own. Everything not exported
// from src/api/ is internal and may change.
export { Gpu, GpuError, type DispatchArgs, type ProfileEntry } from '../gpu/gpu.ts';
export { Tensor, numel, type DType, type F32, type TypedArrayFor } from '../gpu/tensor.ts';
export { adapterLabel, GpuUnavailableError, type AdapterSummary, type DeviceOptions, type PowerPreference } from '../gpu/device.ts';
export { BACKENDS, dawnGpu, exactTimestamps, optionsFromEnv, type Backend, type DawnOptions } from '../io/dawn.ts';
export type { KernelSpec } from '../gpu/kernel.ts';
export { ContractError } from '../gpu/contract.ts';
export { benchKernel, type BenchRow, type KernelBenchOptions, type KernelTiming } from '../gpu/kernel-bench.ts';
export { ShapeError } from '../ops/check.ts';
export { matmul, matmulBackward, type MatmulOptions } from '../ops/matmul.ts';
export { add, axpy, gelu, geluBackward, mul, relu, reluBackward, scale } from '../ops/elementwise.ts';
export { layernormBackward, layernormForward, type LayerNormGrads, type LayerNormOut } from '../ops/layernorm.ts';
export { attentionBackward, attentionForward, type AttentionOut } from '../ops/attention.ts';
export { crossEntropyBackward, crossEntropyForward, crossEntropyMean, IGNORE_INDEX, type CrossEntropyOut } from '../ops/crossentropy.ts';
export { embeddingBackward, embeddingForward, uploadTokens } from '../ops/embedding.ts';
export { meanRows, sum, sumRows, sumSquares } from '../ops/reduce.ts';
export { adamw, clipGradNorm, globalNorm, type AdamWConfig } from '../ops/optimizer.ts';
export { UserError } from '../util/errors.ts';
export { FormatVersionError } from '../util/format.ts';
