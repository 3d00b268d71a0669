// CPU references for the PPO ops, in f64, written straight from the formulas in src/ops/ppo.ts.

export const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

type Arr = ArrayLike<number>;

export interface PpoData {
  mu: Arr;
  logStd: Arr;
  actions: Arr;
  logpOld: Arr;
  advantages: Arr;
  B: number;
  D: number;
}

export function gaussianSample(mu: Arr, logStd: Arr, noise: Arr, D: number): Float64Array {
  return Float64Array.from(mu, (m, i) => m + Math.exp(logStd[i % D]!) * noise[i]!);
}

export function gaussianLogProb(mu: Arr, logStd: Arr, actions: Arr, B: number, D: number): Float64Array {
  const out = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let d = 0; d < D; d++) {
      const z = (actions[b * D + d]! - mu[b * D + d]!) / Math.exp(logStd[d]!);
      s += -0.5 * z * z - logStd[d]! - HALF_LOG_2PI;
    }
    out[b] = s;
  }
  return out;
}

const clamp = (r: number, clip: number) => Math.min(Math.max(r, 1 - clip), 1 + clip);

/** d min(rA, clamp(r)A)/dr with torch.minimum's tie rule (half each) and clamp's inclusive edges. */
export function dObjectiveDRatio(r: number, a: number, clip: number): number {
  const s1 = r * a;
  const s2 = clamp(r, clip) * a;
  const throughClamp = r >= 1 - clip && r <= 1 + clip ? a : 0;
  if (s1 < s2) return a;
  if (s1 > s2) return throughClamp;
  return 0.5 * a + 0.5 * throughClamp;
}

export function ppoLoss(x: PpoData, clip: number, entropyCoef: number) {
  const logp = gaussianLogProb(x.mu, x.logStd, x.actions, x.B, x.D);
  const ratio = logp.map((lp, b) => Math.exp(lp - x.logpOld[b]!));
  let obj = 0;
  let kl = 0;
  let clipped = 0;
  for (let b = 0; b < x.B; b++) {
    const [r, a] = [ratio[b]!, x.advantages[b]!];
    obj += Math.min(r * a, clamp(r, clip) * a);
    kl += r - 1 - (logp[b]! - x.logpOld[b]!);
    if (Math.abs(r - 1) > clip) clipped++;
  }
  let entropy = 0;
  for (let d = 0; d < x.D; d++) entropy += x.logStd[d]! + 0.5 + HALF_LOG_2PI;
  const policyLoss = -obj / x.B;
  return { loss: policyLoss - entropyCoef * entropy, policyLoss, entropy, approxKl: kl / x.B, clipFraction: clipped / x.B, logp, ratio };
}

export function ppoLossBackward(x: PpoData, clip: number, entropyCoef: number): { dMu: Float64Array; dLogStd: Float64Array } {
  const { ratio } = ppoLoss(x, clip, entropyCoef);
  const dMu = new Float64Array(x.B * x.D);
  const dLogStd = new Float64Array(x.D).fill(-entropyCoef);
  for (let b = 0; b < x.B; b++) {
    const r = ratio[b]!;
    const dLogp = (-dObjectiveDRatio(r, x.advantages[b]!, clip) * r) / x.B;
    for (let d = 0; d < x.D; d++) {
      const sigma = Math.exp(x.logStd[d]!);
      const diff = x.actions[b * x.D + d]! - x.mu[b * x.D + d]!;
      dMu[b * x.D + d] = (dLogp * diff) / (sigma * sigma);
      dLogStd[d] = dLogStd[d]! + dLogp * ((diff * diff) / (sigma * sigma) - 1);
    }
  }
  return { dMu, dLogStd };
}

export function normalizeAdvantages(adv: Arr, groupSize: number): Float64Array {
  const out = new Float64Array(adv.length);
  for (let first = 0; first < adv.length; first += groupSize) {
    const group = Array.from({ length: groupSize }, (_, i) => adv[first + i]!);
    const mean = group.reduce((s, a) => s + a, 0) / groupSize;
    const variance = groupSize > 1 ? group.reduce((s, a) => s + (a - mean) ** 2, 0) / (groupSize - 1) : 0;
    group.forEach((a, i) => (out[first + i] = (a - mean) / (Math.sqrt(variance) + 1e-8)));
  }
  return out;
}
