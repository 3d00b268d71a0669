// The edit generator: an MLP policy (src/seal/policy.ts) from a passage's pooled features to K
// coefficients, one per (masked tensor, direction kind); the edit is Σ coefficient · direction
// (src/seal/task.ts). K stays small (8 for the default mask), so PPO's Gaussian over it can explore
// inside its trust region, ReST-EM can regress onto kept samples, and the meta-gradient is a K-vector
// per passage. Its Adam state lives here, saved with it.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32 } from '../gpu/tensor.ts';
import { withSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import type { SealConfig } from './config.ts';
import { Policy, type PolicyConfig } from './policy.ts';
import { UserError } from '../util/errors.ts';
import { readVersion } from '../util/format.ts';

const FORMAT = 'seal-webgpu/seal-generator';
/** The generator file layout written now (metadata `version`); version 0 (none) is the same layout. */
export const GENERATOR_VERSION = 1;
const HEADER = { format: FORMAT, version: String(GENERATOR_VERSION) };

export type GeneratorArrays = Map<string, Float32Array>;

export class Generator {
  readonly policy: Policy;
  readonly grads: Map<string, F32>;
  readonly m: Map<string, F32>;
  readonly v: Map<string, F32>;

  private constructor(policy: Policy, m: Map<string, F32>, v: Map<string, F32>) {
    this.policy = policy;
    this.grads = policy.zerosLike();
    this.m = m;
    this.v = v;
  }

  static policyConfig(config: SealConfig, inputDim: number, actionDim: number): PolicyConfig {
    return { inputDim, latent: config.latent, actionDim, initLogStd: config.initLogStd };
  }

  /** A fresh generator (seeded), or one restored from saved arrays (`<param>`, `adam.m.<param>`, `adam.v.<param>`). */
  static create(gpu: Gpu, pc: PolicyConfig, seed: number, saved?: GeneratorArrays): Generator {
    const policy = saved ? Policy.fromArrays(gpu, pc, saved) : Policy.init(gpu, pc, seed);
    const moments = (prefix: string) =>
      saved?.has(`${prefix}log_std`)
        ? new Map([...policy.params].map(([k, t]) => [k, gpu.tensor(saved.get(`${prefix}${k}`)!, t.shape, 'f32', `${prefix}${k}`)]))
        : policy.zerosLike();
    return new Generator(policy, moments('adam.m.'), moments('adam.v.'));
  }

  get actionDim(): number {
    return this.policy.config.actionDim;
  }

  /** Mean coefficients [N, K] for pooled features ctx [N, d], read back. */
  async meanCoefficients(ctx: F32): Promise<Float32Array> {
    const pass = this.policy.forward(ctx);
    const mu = await this.policy.gpu.read(pass.mu);
    pass.release();
    return mu as Float32Array;
  }

  /**
   * Writes the parameters (and, with `optimizer`, the Adam moments) atomically with `metadata`;
   * `extra` host arrays shaped like the parameters go in as `best.<param>`.
   */
  async save(path: string, metadata: Record<string, string>, optimizer: boolean, extra?: GeneratorArrays): Promise<void> {
    const gpu = this.policy.gpu;
    const named = [
      ...this.policy.params,
      ...(optimizer ? [...this.m].map(([k, t]) => [`adam.m.${k}`, t] as const) : []),
      ...(optimizer ? [...this.v].map(([k, t]) => [`adam.v.${k}`, t] as const) : []),
    ];
    const data = await gpu.readMany(named.map(([, t]) => t));
    const tensors: [string, TensorToWrite][] = named.map(([n, t], i) => [n, { shape: t.shape, data: data[i] as Float32Array }]);
    for (const [k, a] of extra ?? []) tensors.push([`best.${k}`, { shape: this.policy.params.get(k)!.shape, data: a }]);
    await writeSafetensors(path, tensors, { ...metadata, ...HEADER });
  }

  /** Writes given parameter arrays (e.g. a snapshot) as a generator file. */
  static async write(path: string, shapes: ReadonlyMap<string, F32>, arrays: GeneratorArrays, metadata: Record<string, string>): Promise<void> {
    const tensors: [string, TensorToWrite][] = [...shapes].map(([k, t]) => [k, { shape: t.shape, data: arrays.get(k)! }]);
    await writeSafetensors(path, tensors, { ...metadata, ...HEADER });
  }

  static async read(path: string): Promise<{ arrays: GeneratorArrays; metadata: Record<string, string> }> {
    return withSafetensors(path, async (f) => {
      if (f.metadata.format !== FORMAT) throw new UserError(`${path}: not a SEAL generator file (written by seal train); format ${JSON.stringify(f.metadata.format ?? null)}`);
      readVersion(path, 'SEAL generator', f.metadata.version, GENERATOR_VERSION);
      const arrays: GeneratorArrays = new Map();
      for (const name of f.names) arrays.set(name, await f.get(name));
      return { arrays, metadata: { ...f.metadata } };
    });
  }

  release(): void {
    this.policy.release();
    for (const map of [this.m, this.v, this.grads]) for (const t of map.values()) t.release();
  }
}

export function concat(rows: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const r of rows) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}
