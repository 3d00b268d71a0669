// The FMA ceiling case of `seal bench`: shaders/ceiling.wgsl, independent vec4 FMA chains with no
// memory traffic. Its GFLOP/s bound any WGSL kernel on the adapter; matmul rows are a fraction of it.
import type { Gpu } from '../src/gpu/gpu.ts';
import type { KernelSpec } from '../src/gpu/kernel.ts';

const WG = 64;
const CHAINS = 8; // as in the shader
const SPEC: KernelSpec = { shader: 'ceiling.wgsl', entry: 'fma_chains', params: ['iters:u32', 'm:f32', 'a:f32'], constants: { WG } };

/**
 * A prepared ceiling run shaped like a benchmark case: `run(reps)` dispatches the shader `reps` times
 * and syncs. FLOPs per dispatch: lanes × iterations × chains × 8 (a vec4 FMA is 4 multiplies and 4
 * adds). `lanes` should fill the adapter (lavapipe: a few workgroups per core).
 */
export function ceilingCase(gpu: Gpu, lanes = 64 * WG, iters = 4096) {
  const out = gpu.empty([lanes]);
  const workgroups = gpu.grid(lanes, WG);
  return {
    flops: lanes * iters * CHAINS * 8,
    async run(reps: number) {
      for (let r = 0; r < reps; r++) gpu.dispatch(SPEC, { params: { iters, m: 0.999, a: 1e-3 }, tensors: [out], workgroups, label: 'ceiling' });
      await gpu.sync();
    },
    dispose: () => out.release(),
  };
}
