// The SEAL training configuration: defaults, validation with errors that name the field.
import { z } from 'zod';
import { bundled } from '../io/files.ts';
import { UserError } from '../util/errors.ts';

const int = (min: number) => z.number().int().min(min);
const range = z.tuple([int(0), int(0)]).refine(([a, b]) => a < b, 'a range is [start, end) with start < end');

export const DIRECTION_KINDS = ['grad', 'sign'] as const;
export type DirectionKind = (typeof DIRECTION_KINDS)[number];

export const sealConfigSchema = z
  .object({
    /** Base model checkpoint (frozen). */
    model: z.string().min(1),
    /** rl-train passages, the validation split (monitoring, guards, best-iteration choice) and general text. */
    data: z.object({ train: z.string(), validation: z.string(), general: z.string() }),
    mask: z.object({ tensors: z.array(z.string().min(1)).min(1), rows: range.optional(), cols: range.optional() }),
    /**
     * Candidate edit directions per masked tensor, from the whole passage's LM-loss gradient G:
     * grad = −G/‖G‖, sign = −sign(G)/‖sign(G)‖ (Adam's first step). The generator's action holds one
     * coefficient per (tensor, kind).
     */
    directions: z.array(z.enum(DIRECTION_KINDS)).min(1),
    /**
     * With a size > 0, each kind also comes from the gradient after a probe step of this size along
     * the mask's sign direction: a second gradient per passage (one more forward and backward).
     */
    lookahead: z.number().min(0),
    /** λ of the magnitude penalty λ‖Δ‖² in the reward (and the meta loss). */
    penalty: z.number().min(0),
    /** Which block's output the pooled feature is taken from; -1 is the last. */
    featureLayer: z.number().int(),
    latent: int(1),
    /** Initial log σ of every coefficient (PPO and ReST-EM sample around the mean). */
    initLogStd: z.number(),
    /** ppo and rest-em sample edits and learn from their rewards; meta backpropagates the post-edit answer loss. */
    algo: z.enum(['ppo', 'rest-em', 'meta']),
    iterations: int(1),
    /** B inputs per iteration. */
    batch: int(1),
    /** G sampled edits per input (ppo, rest-em). */
    group: int(1),
    /** Updates per iteration (ppo: epochs of the surrogate; rest-em: regression steps; meta: 1). */
    epochs: int(1),
    clip: z.number().min(0),
    /** Entropy bonus; it acts on log σ only, so it needs learnStd. */
    entropyCoef: z.number().min(0),
    /** Stop an iteration's epochs once the approximate KL passes this. */
    targetKl: z.number().positive(),
    /** group: advantages normalised within each input's G samples; batch: over the whole batch. */
    normalize: z.enum(['group', 'batch']),
    lr: z.number().positive(),
    /** Learn log σ too (ppo). */
    learnStd: z.boolean(),
    gradClip: z.number().positive(),
    seed: int(0),
    /** Validation reward and forgetting every this many iterations (and at the end). */
    evalEvery: int(1),
    validationCount: int(1),
    forgettingLines: int(1),
    /** Guards: stop when the mean edit norm or the forgetting passes these. */
    maxEditNorm: z.number().positive(),
    maxForgetting: z.number().positive(),
    checkpointEvery: int(1),
  })
  .strict()
  .refine((c) => c.entropyCoef === 0 || c.learnStd, { message: 'entropyCoef acts on log σ only: set learnStd too', path: ['entropyCoef'] });

export type SealConfig = z.infer<typeof sealConfigSchema>;

export const DEFAULT_SEAL: SealConfig = {
  model: bundled('base.safetensors'),
  data: { train: bundled('knowledge/rl-train.json'), validation: bundled('knowledge/validation.json'), general: bundled('knowledge/general.txt') },
  mask: { tensors: ['h.*.mlp.c_fc.weight', 'h.*.mlp.c_proj.weight'] },
  directions: ['grad', 'sign'],
  lookahead: 0,
  penalty: 0,
  featureLayer: -1,
  latent: 32,
  initLogStd: -0.7,
  algo: 'meta',
  iterations: 40,
  batch: 4,
  group: 4,
  epochs: 4,
  clip: 0.2,
  entropyCoef: 0,
  targetKl: 0.05,
  normalize: 'group',
  lr: 1e-2,
  learnStd: false,
  gradClip: 1,
  seed: 1,
  evalEvery: 5,
  validationCount: 16,
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

export class ConfigError extends UserError {
  override name = 'ConfigError';
}
