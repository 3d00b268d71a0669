// Tests that fail when nothing is learned. A synthetic task where the best edit depends on the
// passage: two kinds of passage whose best coefficients differ, so no single fixed step serves both;
// every algorithm (meta-gradient, PPO, ReST-EM) must train the generator past the best fixed step on
// passages it never trained on. Then the meta-gradient on the real knowledge task.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveConfig, type SealConfig } from '../../src/seal/config.ts';
import { Generator } from '../../src/seal/generator.ts';
import type { EditJob, EditOutcome, EditTask, MetaOutcome } from '../../src/seal/task.ts';
import { SealTrainer } from '../../src/seal/trainer.ts';
import { Rng } from '../../src/util/random.ts';
import { gpu, releaseGpu } from '../helpers.ts';

test.after(releaseGpu);

/**
 * Passage p of kind p % 2 has features one-hot in its kind (plus noise) and a quadratic post-edit
 * loss ½‖a − t_kind‖² over K = 2 coefficients, t_0 = (3, 0), t_1 = (0, 3). The improvement is the
 * loss drop from no edit.
 */
class TwoKinds implements EditTask {
  readonly actionDim = 2;
  readonly featureDim = 4;
  readonly #pooled: Float32Array[];
  static readonly targets = [
    [3, 0],
    [0, 3],
  ];

  constructor(
    readonly size: number,
    seed: number,
  ) {
    const rng = new Rng(seed);
    this.#pooled = Array.from({ length: size }, (_, p) => Float32Array.from([p % 2 === 0 ? 1 : -1, p % 2 === 0 ? -1 : 1, rng.normal() * 0.1, rng.normal() * 0.1]));
  }

  pooled(p: number): Float32Array {
    return this.#pooled[p]!;
  }

  #loss(job: EditJob): number {
    const t = TwoKinds.targets[job.p % 2]!;
    return 0.5 * t.reduce((s, tk, k) => s + (job.coef[k]! - tk) ** 2, 0);
  }

  #outcome(job: EditJob): EditOutcome {
    const improvement = 4.5 - this.#loss(job);
    return { improvement, measured: improvement, norm: Math.hypot(...Array.from(job.coef)) };
  }

  async score(jobs: readonly EditJob[]): Promise<EditOutcome[]> {
    return jobs.map((j) => this.#outcome(j));
  }

  async gradients(jobs: readonly EditJob[]): Promise<MetaOutcome[]> {
    const t = (j: EditJob) => TwoKinds.targets[j.p % 2]!;
    return jobs.map((j) => ({ ...this.#outcome(j), grad: Float64Array.from(Array.from(j.coef), (a, k) => a - t(j)[k]!) }));
  }

  release(): void {}
}

/** The best single coefficient vector for both kinds, (1.5, 1.5), improves each passage by 2.25. */
const BEST_FIXED = 4.5 - 0.5 * (1.5 ** 2 + 1.5 ** 2);

async function trained(config: SealConfig): Promise<number> {
  const g = await gpu();
  const generator = Generator.create(g, Generator.policyConfig(config, 4, 2), config.seed);
  const trainer = new SealTrainer({ config, train: new TwoKinds(16, 1), validation: new TwoKinds(8, 2), generator });
  try {
    for (let i = 0; i < config.iterations; i++) {
      const m = await trainer.step();
      assert.not.ok(m.skipped, `iteration ${i} skipped: ${m.skipped}`);
    }
    const v = await trainer.evaluateValidation();
    return v.validationImprovement;
  } finally {
    trainer.release();
  }
}

const base = { latent: 16, batch: 8, evalEvery: 1000, validationCount: 8, seed: 3 };

test('the meta-gradient learns passage-dependent edits that beat the best fixed step', async () => {
  const got = await trained(resolveConfig({ ...base, algo: 'meta', iterations: 150, lr: 3e-2 }));
  assert.ok(got > BEST_FIXED + 1.5, `meta: validation improvement ${got.toFixed(3)} vs best fixed step ${BEST_FIXED}`);
});

test('PPO learns passage-dependent edits that beat the best fixed step', async () => {
  const got = await trained(resolveConfig({ ...base, algo: 'ppo', iterations: 120, group: 8, epochs: 4, lr: 3e-2, initLogStd: 0 }));
  assert.ok(got > BEST_FIXED + 1, `ppo: validation improvement ${got.toFixed(3)} vs best fixed step ${BEST_FIXED}`);
});

test('ReST-EM learns passage-dependent edits that beat the best fixed step', async () => {
  const got = await trained(resolveConfig({ ...base, algo: 'rest-em', iterations: 120, group: 8, epochs: 4, lr: 3e-2, initLogStd: 0 }));
  assert.ok(got > BEST_FIXED + 1, `rest-em: validation improvement ${got.toFixed(3)} vs best fixed step ${BEST_FIXED}`);
});

test('an untrained generator does not beat the best fixed step (the bar above is not free)', async () => {
  const got = await trained(resolveConfig({ ...base, algo: 'meta', iterations: 1, lr: 1e-9 }));
  assert.ok(got < BEST_FIXED, `untrained: ${got.toFixed(3)}`);
});

test.run();
