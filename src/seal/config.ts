// The SEAL training configuration: defaults, validation with errors that name the field.
import { z } from 'zod';

const int = (min: number) => z.number().int().min(min);
const range = z.tuple([int(0), int(0)]).refine(([a, b]) => a < b, 'a range is [start, end) with start < end');

export const sealConfigSchema = z
  .object({
    /** Base model checkpoint (frozen). */
    model: z.string().min(1),
    data: z.object({ train: z.string(), heldOut: z.string(), general: z.string() }),
    mask: z.object({ tensors: z.array(z.string().min(1)).min(1), rows: range.optional(), cols: range.optional() }),
    edit: z.enum(['dense', 'lowrank']),
    /** Rank of low-rank edits. */
    rank: int(1),
    /** Step scale α in θ' = θ + α·M⊙Δ. */
    alpha: z.number().positive(),
    /** λ of the magnitude penalty λ‖α·M⊙Δ‖² in the reward. */
    penalty: z.number().min(0),
    /** pooled: mean hidden state; pooled+grad adds the passage's LM-loss gradient as a skip direction. */
    features: z.enum(['pooled', 'pooled+grad']),
    /** Which block's output the pooled feature is taken from; -1 is the last. */
    featureLayer: z.number().int(),
    latent: int(1),
    initLogStd: z.number(),
    algo: z.enum(['ppo', 'rest-em']),
    iterations: int(1),
    /** B inputs per iteration. */
    batch: int(1),
    /** G sampled edits per input. */
    group: int(1),
    epochs: int(1),
    clip: z.number().min(0),
    entropyCoef: z.number().min(0),
    /** Stop an iteration's epochs once the approximate KL passes this. */
    targetKl: z.number().positive(),
    /** group: advantages normalised within each input's G samples; batch: over the whole batch. */
    normalize: z.enum(['group', 'batch']),
    /** Learning rate of the step head (one action dim). */
    stepLr: z.number().min(0),
    /**
     * Learning rate of the delta head. Adam moves every weight by about its lr, and a decoder column
     * moves μ in all D action dims at once: the KL to the sampling policy grows with D, so a wide
     * (dense) action needs a far smaller rate than the one-dim step head.
     */
    deltaLr: z.number().min(0),
    /** Initial log σ of the step head. */
    stepLogStd: z.number(),
    /** Learn log σ too; per-dimension σ updates add up over D dims in the log-ratio, so off by default. */
    learnStd: z.boolean(),
    gradClip: z.number().positive(),
    seed: int(0),
    /** Held-out reward and forgetting every this many iterations (and at the end). */
    evalEvery: int(1),
    heldOutCount: int(1),
    forgettingLines: int(1),
    /** Guards: stop when the mean edit norm or the forgetting passes these. */
    maxEditNorm: z.number().positive(),
    maxForgetting: z.number().positive(),
    checkpointEvery: int(1),
  })
  .strict();

export type SealConfig = z.infer<typeof sealConfigSchema>;

export const DEFAULT_SEAL: SealConfig = {
  model: 'data/base.safetensors',
  data: { train: 'data/knowledge/rl-train.json', heldOut: 'data/knowledge/held-out.json', general: 'data/knowledge/general.txt' },
  mask: { tensors: ['h.1.mlp.c_proj.weight'] },
  edit: 'dense',
  rank: 4,
  alpha: 1,
  penalty: 0,
  features: 'pooled+grad',
  featureLayer: -1,
  latent: 32,
  initLogStd: -6,
  algo: 'ppo',
  iterations: 20,
  batch: 4,
  group: 4,
  epochs: 4,
  clip: 0.2,
  entropyCoef: 0,
  targetKl: 0.05,
  normalize: 'group',
  stepLr: 1e-2,
  deltaLr: 1e-7,
  stepLogStd: -0.7,
  learnStd: false,
  gradClip: 1,
  seed: 1,
  evalEvery: 5,
  heldOutCount: 16,
  forgettingLines: 32,
  maxEditNorm: 100,
  maxForgetting: 1,
  checkpointEvery: 5,
};

/** Defaults, then a JSON file's fields, then flags; the result validated as a whole. */
export function resolveConfig(...layers: Record<string, unknown>[]): SealConfig {
  const merged: Record<string, unknown> = structuredClone(DEFAULT_SEAL);
  for (const l of layers) for (const [k, v] of Object.entries(l)) if (v !== undefined) merged[k] = v;
  const r = sealConfigSchema.safeParse(merged);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `  ${i.path.join('.') || '(config)'}: ${i.message}`);
    throw new ConfigError(`invalid SEAL config:\n${issues.join('\n')}`);
  }
  return r.data;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}
