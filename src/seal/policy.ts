// The edit generator π_φ(a | c) of SEAL variant A (docs/ARCHITECTURE.md): an MLP maps a passage's context
// features to the mean μ of a diagonal Gaussian over edit actions, μ = relu(c·Wenc + benc)·Wdec +
// bdec. log σ is learned and state-independent. Everything runs on the GPU; a forward returns a
// pass that owns its activations, whose backward accumulates parameter gradients (log σ's comes
// from the PPO op).
import type { Gpu } from '../gpu/gpu.ts';
import { fmtShape, type F32 } from '../gpu/tensor.ts';
import { withSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import { ShapeError, expect } from '../ops/check.ts';
import { relu, reluBackward } from '../ops/elementwise.ts';
import { matmul, matmulBackward } from '../ops/matmul.ts';
import { gaussianSample } from '../ops/ppo.ts';
import { readVersion } from '../util/format.ts';
import { Rng } from '../util/random.ts';

export interface PolicyConfig {
  /** Context feature size d. */
  inputDim: number;
  /** Hidden width. */
  latent: number;
  /** D = param_dim (dense) or r(m+n) (low-rank). */
  actionDim: number;
  /** Initial log σ for every action dim. */
  initLogStd: number;
}

export interface PolicyPass {
  /** [N, D]; owned by the pass, freed by release(). */
  mu: F32;
  /**
   * Accumulates (+=) d(loss)/d(param) for enc/dec weights and biases into grads, given dMu [N, D].
   * log_std's gradient comes from the PPO op directly and is not touched here.
   */
  backward(dMu: F32, grads: Map<string, F32>): void;
  /** Frees the activations, μ included. */
  release(): void;
}

const FORMAT = 'seal-webgpu/policy';
/** Metadata keys save() writes itself. */
/** The policy file layout written now (metadata `version`); version 0 (none) is the same layout. */
export const POLICY_VERSION = 1;
const RESERVED = ['format', 'version', 'config'];

/** Every parameter's name and shape, in file order. */
export function policyParamShapes(config: PolicyConfig): [string, number[]][] {
  const { inputDim: d, latent: L, actionDim: D } = config;
  return [
    ['enc.weight', [d, L]],
    ['enc.bias', [L]],
    ['dec.weight', [L, D]],
    ['dec.bias', [D]],
    ['log_std', [D]],
  ];
}

export function validatePolicyConfig(config: PolicyConfig, where = 'PolicyConfig'): PolicyConfig {
  if (typeof config !== 'object' || config === null) throw new TypeError(`${where}: must be an object, got ${JSON.stringify(config)}`);
  for (const key of ['inputDim', 'latent', 'actionDim'] as const) {
    const v = config[key];
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${where}: ${key} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (typeof config.initLogStd !== 'number' || !Number.isFinite(config.initLogStd)) {
    throw new RangeError(`${where}: initLogStd must be a finite number, got ${JSON.stringify(config.initLogStd)}`);
  }
  const { inputDim, latent, actionDim, initLogStd } = config;
  return { inputDim, latent, actionDim, initLogStd };
}

export class Policy {
  readonly config: PolicyConfig;
  readonly gpu: Gpu;
  readonly params: Map<string, F32>;

  private constructor(gpu: Gpu, config: PolicyConfig, params: Map<string, F32>) {
    this.gpu = gpu;
    this.config = config;
    this.params = params;
  }

  /**
   * Fresh parameters: enc ~ N(0, 2/d) (He, for the ReLU), dec ~ N(0, (1e-3)²/latent) so the first
   * edits are small but every unit still gets a gradient, biases 0, log σ = initLogStd.
   */
  static init(gpu: Gpu, config: PolicyConfig, seed: number): Policy {
    const c = validatePolicyConfig(config);
    const rng = new Rng(seed);
    const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
    const arrays = new Map<string, Float32Array>();
    for (const [name, shape] of policyParamShapes(c)) {
      const n = size(shape);
      const data =
        name === 'enc.weight' ? rng.normalArray(n, Math.sqrt(2 / c.inputDim))
        : name === 'dec.weight' ? rng.normalArray(n, 1e-3 / Math.sqrt(c.latent))
        : name === 'log_std' ? new Float32Array(n).fill(c.initLogStd)
        : new Float32Array(n);
      arrays.set(name, data);
    }
    return Policy.fromArrays(gpu, c, arrays);
  }

  /** Uploads host arrays (each the flat row-major data of its parameter); names beyond the config's are ignored. */
  static fromArrays(gpu: Gpu, config: PolicyConfig, arrays: ReadonlyMap<string, Float32Array>): Policy {
    const c = validatePolicyConfig(config);
    const shapes = policyParamShapes(c);
    for (const [name, shape] of shapes) {
      const a = arrays.get(name);
      if (!a) throw new RangeError(`Policy: missing parameter ${name} ${fmtShape(shape)}`);
      const n = shape.reduce((x, y) => x * y, 1);
      if (!(a instanceof Float32Array) || a.length !== n) throw new ShapeError(`Policy: ${name} needs ${n} f32 values for ${fmtShape(shape)}, got ${a.length}`);
    }
    return new Policy(gpu, c, new Map(shapes.map(([name, shape]) => [name, gpu.tensor(arrays.get(name)!, shape, 'f32', `policy.${name}`)])));
  }

  async toArrays(): Promise<Map<string, Float32Array>> {
    const names = [...this.params.keys()];
    const data = await this.gpu.readMany(names.map((n) => this.params.get(n)!));
    return new Map(names.map((n, i) => [n, data[i] as Float32Array]));
  }

  /** Zeroed tensors shaped like the parameters: gradients, optimizer moments. */
  zerosLike(): Map<string, F32> {
    return new Map([...this.params].map(([k, t]) => [k, this.gpu.zeros(t.shape, 'f32', `policy.${k}.grad`)]));
  }

  #p(name: string): F32 {
    return this.params.get(name)!;
  }

  /** μ [N, D] for contexts [N, d]: μ = relu(ctx·Wenc + benc)·Wdec + bdec. */
  forward(ctx: F32): PolicyPass {
    const op = 'Policy.forward';
    const { inputDim: d } = this.config;
    if (ctx.shape.length !== 2) throw new ShapeError(`${op}: ctx must be 2-D [N, ${d}], got ${ctx}`);
    const N = ctx.shape[0]!;
    expect(op, 'ctx', ctx, [N, d]);
    const gpu = this.gpu;
    const pre = matmul(gpu, ctx, this.#p('enc.weight'), { bias: this.#p('enc.bias') });
    // relu(x) > 0 exactly where x > 0, so the backward needs only h.
    const h = relu(gpu, pre);
    pre.release();
    const mu = matmul(gpu, h, this.#p('dec.weight'), { bias: this.#p('dec.bias') });
    return new Pass(this, ctx, h, mu);
  }

  /** actions = μ + exp(log_std) ⊙ noise, noise [N, D] standard normal (the trainer draws it with ops/random.ts normal). */
  sample(mu: F32, noise: F32): F32 {
    expect('Policy.sample', 'mu', mu, [-1, this.config.actionDim]);
    return gaussianSample(this.gpu, mu, this.#p('log_std'), noise);
  }

  /** Writes the parameters and config as safetensors, atomically; `metadata` is stored alongside. */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    const clash = RESERVED.filter((k) => k in metadata);
    if (clash.length) throw new Error(`Policy.save: metadata key(s) ${clash.join(', ')} are written by save itself`);
    const arrays = await this.toArrays();
    const tensors: [string, TensorToWrite][] = policyParamShapes(this.config).map(([name, shape]) => [name, { shape, data: arrays.get(name)! }]);
    await writeSafetensors(path, tensors, { ...metadata, format: FORMAT, version: String(POLICY_VERSION), config: JSON.stringify(this.config) });
  }

  static async load(gpu: Gpu, path: string): Promise<Policy> {
    return withSafetensors(path, async (f) => {
      if (f.metadata.format !== FORMAT) {
        throw new Error(`${path}: not a seal-webgpu policy (metadata format ${JSON.stringify(f.metadata.format ?? null)}, expected '${FORMAT}')`);
      }
      readVersion(path, 'policy', f.metadata.version, POLICY_VERSION);
      let raw: unknown;
      try {
        raw = JSON.parse(f.metadata.config ?? '');
      } catch {
        throw new Error(`${path}: the policy config metadata is missing or not JSON: ${JSON.stringify(f.metadata.config ?? null)}`);
      }
      const config = validatePolicyConfig(raw as PolicyConfig, `${path}: policy config`);
      const shapes = policyParamShapes(config);
      const extra = f.names.filter((n) => !shapes.some(([name]) => name === n));
      if (extra.length) throw new Error(`${path}: tensor(s) ${extra.join(', ')} do not belong to a policy with config ${JSON.stringify(config)}`);
      const arrays = new Map<string, Float32Array>();
      for (const [name, shape] of shapes) arrays.set(name, await f.get(name, shape));
      return Policy.fromArrays(gpu, config, arrays);
    });
  }

  release(): void {
    for (const t of this.params.values()) t.release();
  }
}

class Pass implements PolicyPass {
  readonly mu: F32;
  readonly #policy: Policy;
  readonly #ctx: F32;
  readonly #h: F32;
  #released = false;

  constructor(policy: Policy, ctx: F32, h: F32, mu: F32) {
    this.#policy = policy;
    this.#ctx = ctx;
    this.#h = h;
    this.mu = mu;
  }

  backward(dMu: F32, grads: Map<string, F32>): void {
    const op = 'PolicyPass.backward';
    if (this.#released) throw new Error(`${op}: the pass was released`);
    const policy = this.#policy;
    const gpu = policy.gpu;
    expect(op, 'dMu', dMu, this.mu.shape);
    const g = (name: string): F32 => {
      const t = grads.get(name);
      if (!t) throw new Error(`${op}: grads has no '${name}' (make grads with Policy.zerosLike())`);
      expect(op, `grads '${name}'`, t, policy.params.get(name)!.shape);
      return t;
    };
    const [dEncW, dEncB, dDecW, dDecB] = ['enc.weight', 'enc.bias', 'dec.weight', 'dec.bias'].map(g) as [F32, F32, F32, F32];
    const p = (name: string) => policy.params.get(name)!;
    const dh = matmulBackward(gpu, this.#h, p('dec.weight'), dMu, { dw: dDecW, dbias: dDecB });
    const dPre = reluBackward(gpu, this.#h, dh);
    dh.release();
    // matmulBackward always forms d(ctx) too; the policy has no use for it.
    matmulBackward(gpu, this.#ctx, p('enc.weight'), dPre, { dw: dEncW, dbias: dEncB }).release();
    dPre.release();
  }

  release(): void {
    this.#released = true;
    this.#h.release();
    this.mu.release();
  }
}
