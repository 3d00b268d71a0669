// Ops of a diagonal Gaussian policy a ~ N(μ, σ²), μ (B×D) per sample, log σ (D) shared: sampling
// (PPO's and ReST-EM's), log-probs, and PPO's clipped surrogate loss with entropy bonus and its gradients, and advantage normalisation.
// Scalars (loss, entropy, approximate KL, clip fraction) are computed on the GPU into one small
// tensor, so a training step reads back only what it logs. ppoLossBackward is given no gradient
// buffer: dMu and dLogStd come back fresh (the gradient convention, docs/ARCHITECTURE.md).
//
// Subgradients follow PyTorch: min(r·A, clamp(r, 1−ε, 1+ε)·A) sends the gradient to the smaller
// term (half to each on a tie, as torch.minimum), and clamp passes it for 1−ε ≤ r ≤ 1+ε. Hence the
// gradient is zero for A > 0, r > 1+ε and for A < 0, r < 1−ε, and the unclipped A·r·∂logp elsewhere,
// including exactly at the edges.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { ShapeError, expect, noAlias, outputLike, sameShape } from './check.ts';

const WG = 64;
const PPO_PARAMS = ['B:u32', 'D:u32', 'clip:f32', 'ent_coef:f32'];
const spec = (entry: string, params: string[]): KernelSpec => ({ shader: 'ppo.wgsl', entry, params, constants: { WG } });
const LOGPROB = spec('logprob', PPO_PARAMS);
const SURROGATE = spec('surrogate', PPO_PARAMS);
const GRAD_MU = spec('grad_mu', PPO_PARAMS);
const GRAD_LOG_STD = spec('grad_log_std', PPO_PARAMS);
const NORMALIZE = spec('normalize_groups', ['groups:u32', 'size:u32']);
const SAMPLE = spec('gaussian_sample', ['n:u32', 'D:u32']);

/** Where each scalar sits in PpoForward.stats. */
export const PpoStat = { loss: 0, policyLoss: 1, entropy: 2, approxKl: 3, clipFraction: 4 } as const;

export interface GaussianBatch {
  /** [B, D] */
  mu: Tensor;
  /** [D] */
  logStd: Tensor;
  /** [B, D] */
  actions: Tensor;
}

export interface PpoBatch extends GaussianBatch {
  /** [B]: log-probabilities of the actions under the policy that sampled them. */
  logpOld: Tensor;
  /** [B] */
  advantages: Tensor;
}

export interface PpoConfig {
  /** ε of the ratio clip. */
  clip: number;
  /** Weight of the entropy bonus: loss = policy loss − entropyCoef·entropy. */
  entropyCoef: number;
}

export interface PpoForward {
  /** [B] log-probabilities under the current policy. */
  logp: Tensor;
  /** [B] r = exp(logp − logpOld); the backward needs it. */
  ratio: Tensor;
  /** [5] indexed by PpoStat: loss, policy loss −mean min(rA, clip(r)A), entropy, approx KL mean((r−1) − log r), clip fraction mean(|r−1| > ε). */
  stats: Tensor;
}

function gaussianDims(op: string, x: GaussianBatch): { B: number; D: number } {
  if (x.mu.shape.length !== 2) throw new ShapeError(`${op}: mu must be 2-D [B, D], got ${x.mu}`);
  const [B, D] = x.mu.shape as [number, number];
  if (B === 0) throw new ShapeError(`${op}: the batch is empty; its mean is undefined`);
  expect(op, 'mu', x.mu, [B, D]);
  expect(op, 'logStd', x.logStd, [D]);
  expect(op, 'actions', x.actions, [B, D]);
  return { B, D };
}

function ppoDims(op: string, x: PpoBatch, cfg: PpoConfig): { B: number; D: number; clip: number; ent_coef: number } {
  const { B, D } = gaussianDims(op, x);
  expect(op, 'logpOld', x.logpOld, [B]);
  expect(op, 'advantages', x.advantages, [B]);
  if (!(cfg.clip >= 0)) throw new RangeError(`${op}: clip must be ≥ 0, got ${cfg.clip}`);
  return { B, D, clip: cfg.clip, ent_coef: cfg.entropyCoef };
}

/** actions [N, D] = μ + exp(log σ) ⊙ noise, log σ [D] shared by every row, noise standard normal. */
export function gaussianSample(gpu: Gpu, mu: Tensor, logStd: Tensor, noise: Tensor, out?: Tensor): Tensor {
  const op = 'gaussianSample';
  if (mu.shape.length !== 2) throw new ShapeError(`${op}: mu must be 2-D [N, D], got ${mu}`);
  const D = mu.shape[1]!;
  expect(op, 'mu', mu, [-1, D]);
  expect(op, 'logStd', logStd, [D]);
  sameShape(op, mu, noise, ['mu', 'noise']);
  const o = outputLike(gpu, op, mu, out, logStd, noise);
  gpu.dispatch(SAMPLE, { params: { n: mu.size, D: Math.max(D, 1) }, tensors: [mu, logStd, noise, o], workgroups: gpu.grid(mu.size, WG) });
  return o;
}

/** [B] log N(actions | μ, σ²), summed over D. */
export function gaussianLogProb(gpu: Gpu, mu: Tensor, logStd: Tensor, actions: Tensor, out?: Tensor): Tensor {
  const op = 'gaussianLogProb';
  const { B, D } = gaussianDims(op, { mu, logStd, actions });
  const o = out ?? gpu.empty([B]);
  expect(op, 'out', o, [B]);
  noAlias(op, o, mu, logStd, actions);
  gpu.dispatch(LOGPROB, { params: { B, D, clip: 0, ent_coef: 0 }, tensors: [mu, logStd, actions, o], workgroups: gpu.grid(B, 1) });
  return o;
}

/** The clipped surrogate loss with entropy bonus, and the PPO diagnostics, all on the GPU. */
export function ppoLoss(gpu: Gpu, x: PpoBatch, cfg: PpoConfig): PpoForward {
  const params = ppoDims('ppoLoss', x, cfg);
  const logp = gaussianLogProb(gpu, x.mu, x.logStd, x.actions);
  const ratio = gpu.empty([params.B], 'f32', 'ppo.ratio');
  const stats = gpu.empty([5], 'f32', 'ppo.stats');
  gpu.dispatch(SURROGATE, { params, tensors: [logp, x.logStd, x.logpOld, ratio, x.advantages, stats], workgroups: [1] });
  return { logp, ratio, stats };
}

/** Gradients of ppoLoss's loss wrt μ [B, D] and log σ [D] (log σ's summed over the batch in a fixed order). */
export function ppoLossBackward(gpu: Gpu, x: PpoBatch, ratio: Tensor, cfg: PpoConfig): { dMu: Tensor; dLogStd: Tensor } {
  const op = 'ppoLossBackward';
  const params = ppoDims(op, x, cfg);
  expect(op, 'ratio', ratio, [params.B]);
  const inputs = [x.mu, x.logStd, x.actions, ratio, x.advantages];
  const dMu = gpu.empty([params.B, params.D], 'f32', 'ppo.dMu');
  const dLogStd = gpu.empty([params.D], 'f32', 'ppo.dLogStd');
  gpu.dispatch(GRAD_MU, { params, tensors: [...inputs, dMu], workgroups: [Math.ceil(params.D / WG), params.B] });
  gpu.dispatch(GRAD_LOG_STD, { params, tensors: [...inputs, dLogStd], workgroups: gpu.grid(params.D, WG) });
  return { dMu, dLogStd };
}

/**
 * (A − mean)/(std + 1e-8) over each group of `groupSize` consecutive advantages (the G samples of
 * one input), or over the whole batch (the default). std is Bessel-corrected like torch.std; a
 * group of one gives 0. A NaN makes its whole group NaN.
 */
export function normalizeAdvantages(gpu: Gpu, advantages: Tensor, groupSize = advantages.size, out?: Tensor): Tensor {
  const op = 'normalizeAdvantages';
  expect(op, 'advantages', advantages, [-1]);
  const n = advantages.size;
  if (!Number.isInteger(groupSize) || groupSize < 1 || n % groupSize !== 0) {
    throw new ShapeError(`${op}: groupSize ${groupSize} must be a positive divisor of the batch size ${n}`);
  }
  const o = outputLike(gpu, op, advantages, out);
  const groups = n / groupSize;
  gpu.dispatch(NORMALIZE, { params: { groups, size: groupSize }, tensors: [advantages, o], workgroups: gpu.grid(groups, WG) });
  return o;
}
