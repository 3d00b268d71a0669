// The edit generator as one or two policy heads over the same context features:
//  - delta: μ_Δ(c) ∈ R^D, the masked delta itself (dense) or low-rank factors, as DESIGN.md §1 has it;
//  - step (with gradient features): μ_s(c) ∈ R, a step along the passage's own LM-loss descent
//    direction. One action dim with its own σ can explore at a useful scale, where D-dim dense
//    exploration cannot: under PPO the log-ratio of a D-dim Gaussian sums D terms.
// Each head has its own optimizer state and learning rate; both see the same advantages.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32 } from '../gpu/tensor.ts';
import { withSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import type { SealConfig } from './config.ts';
import { Policy, type PolicyConfig, type PolicyPass } from './policy.ts';

export type HeadName = 'delta' | 'step';

export interface Head {
  name: HeadName;
  policy: Policy;
  m: Map<string, F32>;
  v: Map<string, F32>;
  grads: Map<string, F32>;
  lr: number;
}

export type HeadArrays = Map<string, Float32Array>;

export function headConfigs(config: SealConfig, inputDim: number, actionDim: number): Map<HeadName, PolicyConfig> {
  const heads = new Map<HeadName, PolicyConfig>([['delta', { inputDim, latent: config.latent, actionDim, initLogStd: config.initLogStd }]]);
  if (config.features === 'pooled+grad') heads.set('step', { inputDim, latent: config.latent, actionDim: 1, initLogStd: config.stepLogStd });
  return heads;
}

/** Fresh heads, or heads restored from saved arrays (`<head>.<param>`, `adam.m.<head>.<param>`, ...). */
export function makeHeads(gpu: Gpu, config: SealConfig, configs: Map<HeadName, PolicyConfig>, saved?: HeadArrays): Head[] {
  return [...configs].map(([name, pc], i) => {
    const pick = (prefix: string) => new Map([...(saved ?? [])].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    const policy = saved ? Policy.fromArrays(gpu, pc, pick(`${name}.`)) : Policy.init(gpu, pc, config.seed * 2 + i);
    const moments = (prefix: string) =>
      saved && saved.has(`${prefix}${name}.log_std`)
        ? new Map([...policy.params].map(([k, t]) => [k, gpu.tensor(saved.get(`${prefix}${name}.${k}`)!, t.shape, 'f32', `${prefix}${name}.${k}`)]))
        : policy.zerosLike();
    return { name, policy, m: moments('adam.m.'), v: moments('adam.v.'), grads: policy.zerosLike(), lr: name === 'delta' ? config.deltaLr : config.stepLr };
  });
}

/** Writes the heads' parameters (and, with `optimizer`, their Adam moments) atomically. */
export async function saveHeads(path: string, heads: readonly Head[], metadata: Record<string, string>, optimizer: boolean): Promise<void> {
  const gpu = heads[0]!.policy.gpu;
  const named = heads.flatMap((h) => [
    ...[...h.policy.params].map(([k, t]) => [`${h.name}.${k}`, t] as const),
    ...(optimizer ? [...h.m].map(([k, t]) => [`adam.m.${h.name}.${k}`, t] as const) : []),
    ...(optimizer ? [...h.v].map(([k, t]) => [`adam.v.${h.name}.${k}`, t] as const) : []),
  ]);
  const data = await gpu.readMany(named.map(([, t]) => t));
  const tensors: [string, TensorToWrite][] = named.map(([n, t], i) => [n, { shape: t.shape, data: data[i] as Float32Array }]);
  await writeSafetensors(path, tensors, { format: 'seal-webgpu/seal-policy', ...metadata });
}

export async function readHeads(path: string): Promise<{ arrays: HeadArrays; metadata: Record<string, string> }> {
  return withSafetensors(path, async (f) => {
    if (f.metadata.format !== 'seal-webgpu/seal-policy') throw new Error(`${path}: not a SEAL policy file (written by seal train)`);
    const arrays: HeadArrays = new Map();
    for (const name of f.names) arrays.set(name, await f.get(name));
    return { arrays, metadata: { ...f.metadata } };
  });
}

export function releaseHeads(heads: readonly Head[]): void {
  for (const h of heads) {
    h.policy.release();
    for (const map of [h.m, h.v, h.grads]) for (const t of map.values()) t.release();
  }
}

/**
 * The heads' mean actions (no sampling) for contexts [N, d]: the delta head's μ, and the step
 * head's step sizes read back (N floats) when there is one. Release `delta` when done.
 */
export async function meanActions(heads: readonly Head[], ctx: F32): Promise<{ delta: PolicyPass; sizes?: Float32Array }> {
  const [delta, step] = heads.map((h) => h.policy.forward(ctx));
  if (!step) return { delta: delta! };
  const sizes = await heads[0]!.policy.gpu.read(step.mu);
  step.release();
  return { delta: delta!, sizes };
}
