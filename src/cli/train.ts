// `seal train`: trains the edit generator (meta-gradient, PPO or ReST-EM) into a run directory.
import { SingleBar, Presets } from 'cli-progress';
import type { Gpu } from '../gpu/gpu.ts';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { resolveConfig, type SealConfig } from '../seal/config.ts';
import { readConfigFields, runFiles, trainGenerator, type TrainedRun, type TrainHooks } from '../seal/run.ts';
import type { IterationMetrics } from '../seal/trainer.ts';
import { UserError } from '../util/errors.ts';

const fmt = (x: number | undefined, d = 3) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));

export function metricsLine(m: IterationMetrics): string {
  const ppo = m.approxKl !== undefined ? ` | kl ${fmt(m.approxKl, 4)} clip ${fmt(m.clipFraction, 2)}` : '';
  const kept = m.kept !== undefined ? ` | kept ${m.kept}` : '';
  const val = m.validationImprovement !== undefined ? ` | validation Δnll ${fmt(m.validationImprovement)} (measured ${fmt(m.validationMeasured)}) | forgetting ${fmt(m.forgetting)}` : '';
  return `iter ${m.iteration}: reward ${fmt(m.rewardMean)}±${fmt(m.rewardStd)} | Δnll scored ${fmt(m.improvement)} measured ${fmt(m.measuredImprovement)} | edit ‖Δ‖ ${fmt(m.editNorm)}${ppo}${kept} | ${(m.ms.total / 1000).toFixed(1)}s${val}${m.skipped ? ` | SKIPPED: ${m.skipped}` : ''}`;
}

/** `trainGenerator` with a progress bar and a line per iteration on the terminal (none when `quiet`). */
export async function trainRun(gpu: Gpu, runDir: string, config: SealConfig, resume: boolean, quiet = false, stopAfter = Infinity): Promise<TrainedRun> {
  const bar = new SingleBar(
    { format: '{stage} |{bar}| {value}/{total} | {info} | ETA {eta_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 15_000 },
    Presets.shades_classic,
  );
  const hooks: TrainHooks = quiet
    ? {}
    : {
        onFeatures: (done, total) => (done === 0 ? bar.start(total, 0, { stage: 'features', info: 'base model embeddings and gradients' }) : bar.update(done)),
        onStart: (trainer, c, resumed) => {
          bar.stop();
          if (resumed) console.log(`resuming ${runDir} at iteration ${trainer.iteration}`);
          console.log(`mask ${c.mask.tensors.join(', ')}; the generator gives ${trainer.generator.actionDim} coefficients (${c.directions.join(' + ')} directions per tensor); ${c.algo.toUpperCase()}`);
          bar.start(c.iterations, trainer.iteration, { stage: 'train', info: '' });
        },
        onIteration: (m, trainer, c) => {
          bar.update(trainer.iteration, { info: `reward ${fmt(m.rewardMean)} | ${(m.ms.total / 1000).toFixed(1)} s/iter` });
          bar.stop();
          console.log(metricsLine(m));
          if (trainer.iteration < c.iterations) bar.start(c.iterations, trainer.iteration, { stage: 'train', info: '' });
        },
      };
  try {
    const run = await trainGenerator(gpu, runDir, config, { resume, stopAfter, hooks });
    const { trainer, config: c } = run;
    if (!quiet && trainer.iteration < c.iterations) console.log(`stopped after iteration ${trainer.iteration} of ${c.iterations}; continue with --resume`);
    if (!quiet && trainer.best && trainer.iteration === c.iterations) console.log(`kept the generator as it was after ${trainer.best.iteration} iterations (best validation reward ${fmt(trainer.best.reward)})`);
    return run;
  } finally {
    bar.stop();
  }
}

export async function trainCommand(dev: DawnOptions, runDir: string, config: SealConfig, resume: boolean, stopAfter = Infinity): Promise<void> {
  const gpu = await dawnGpu(dev);
  try {
    const { trainer, model } = await trainRun(gpu, runDir, config, resume, false, stopAfter);
    if (trainer.iteration === config.iterations) console.log(`wrote ${runFiles(runDir).policy} and ${runFiles(runDir).metrics}`);
    trainer.release();
    model.release();
  } finally {
    gpu.destroy();
  }
}

/** Flags that override config fields (undefined ones are left out). */
export async function configFromFlags(o: Record<string, unknown>, file?: string): Promise<SealConfig> {
  const mask = o.mask ? { tensors: String(o.mask).split(','), rows: o.maskRows, cols: o.maskCols } : undefined;
  const flags: Record<string, unknown> = {
    model: o.model,
    ...(mask ? { mask } : {}),
    ...(o.directions ? { directions: String(o.directions).split(',').map((x) => x.trim()) } : {}),
    lookahead: o.lookahead,
    penalty: o.penalty,
    algo: o.algo,
    iterations: o.iterations,
    batch: o.batch,
    group: o.group,
    epochs: o.epochs,
    lr: o.lr,
    learnStd: o.learnStd,
    seed: o.seed,
    latent: o.latent,
    initLogStd: o.initLogStd,
  };
  return resolveConfig(file ? await readConfigFields(file) : {}, flags);
}
