// `seal train`: trains the edit generator with PPO or ReST-EM into a run directory.
import { existsSync, readFileSync } from 'node:fs';
import { SingleBar, Presets } from 'cli-progress';
import { Gpu } from '../gpu/gpu.ts';
import type { DeviceOptions } from '../gpu/device.ts';
import { loadModel } from '../model/load.ts';
import { resolveConfig, type SealConfig } from '../seal/config.ts';
import { openRun, runFiles, saveCheckpoint, writeMetrics } from '../seal/run.ts';
import { SealTrainer, type IterationMetrics } from '../seal/trainer.ts';
import { saveHeads } from '../seal/heads.ts';
import { loadSquad } from '../tasks/squad.ts';

export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`--config ${path}: ${(e as Error).message}`);
  }
}

export const readLines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

export function missingModel(path: string): Error {
  return new Error(`base model ${path} not found. Make one with: seal pretrain --out ${path}   (the README gives the exact command for the bundled model)`);
}

const fmt = (x: number | undefined, d = 3) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));

export function metricsLine(m: IterationMetrics): string {
  const step = m.stepSize !== undefined ? ` | step ${fmt(m.stepSize)}` : '';
  const held = m.heldOutImprovement !== undefined ? ` | held-out Δnll ${fmt(m.heldOutImprovement)} (measured ${fmt(m.heldOutMeasured)}) | forgetting ${fmt(m.forgetting)}` : '';
  return `iter ${m.iteration}: reward ${fmt(m.rewardMean)}±${fmt(m.rewardStd)} | Δnll scored ${fmt(m.improvement)} measured ${fmt(m.measuredImprovement)} | edit ‖Δ‖ ${fmt(m.editNorm)}${step} | kl ${fmt(m.approxKl, 4)} clip ${fmt(m.clipFraction, 2)} | ${(m.ms.total / 1000).toFixed(1)}s${held}${m.skipped ? ` | SKIPPED: ${m.skipped}` : ''}`;
}

/** Trains a SEAL policy; returns the metrics of every iteration of the run (resumed ones included). */
export async function trainRun(gpu: Gpu, runDir: string, config: SealConfig, resume: boolean, quiet = false): Promise<{ trainer: SealTrainer; metrics: IterationMetrics[] }> {
  const run = await openRun(runDir, config, resume);
  const c = run.config;
  if (!existsSync(c.model)) throw missingModel(c.model);
  const { model, tokenizer: tok } = await loadModel(gpu, c.model);
  const data = { train: await loadSquad(c.data.train), heldOut: await loadSquad(c.data.heldOut), general: readLines(c.data.general) };
  const bar = new SingleBar(
    { format: '{stage} |{bar}| {value}/{total} | {info} | ETA {eta_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 15_000 },
    Presets.shades_classic,
  );
  if (!quiet) bar.start(data.train.length + Math.min(c.heldOutCount, data.heldOut.length), 0, { stage: 'features', info: 'base model embeddings and gradients' });
  const trainer = await SealTrainer.create(model, tok, c, data, run.state, (_, done) => !quiet && bar.update(done));
  if (!quiet) {
    bar.stop();
    if (run.state) console.log(`resuming ${runDir} at iteration ${run.state.iteration}`);
    console.log(`mask ${c.mask.tensors.join(', ')}: ${trainer.mask.paramDim} parameters; ${c.edit} edits, action ${trainer.layout.actionDim} values; ${c.algo.toUpperCase()}`);
    bar.start(c.iterations, trainer.iteration, { stage: 'train', info: '' });
  }
  const metrics = run.metrics;
  try {
    while (trainer.iteration < c.iterations) {
      const m = await trainer.step();
      metrics.push(m);
      await writeMetrics(runDir, metrics);
      if (trainer.iteration % c.checkpointEvery === 0 || trainer.iteration === c.iterations) await saveCheckpoint(runDir, trainer);
      if (!quiet) {
        bar.update(trainer.iteration, { info: `reward ${fmt(m.rewardMean)} | ${(m.ms.total / 1000).toFixed(1)} s/iter` });
        bar.stop();
        console.log(metricsLine(m));
        if (trainer.iteration < c.iterations) bar.start(c.iterations, trainer.iteration, { stage: 'train', info: '' });
      }
      if (m.editNorm > c.maxEditNorm) throw new Error(`stopped: mean edit norm ${m.editNorm.toFixed(3)} passed maxEditNorm ${c.maxEditNorm} (raise --penalty or lower --alpha)`);
      if (m.forgetting !== undefined && m.forgetting > c.maxForgetting) throw new Error(`stopped: forgetting ${m.forgetting.toFixed(3)} passed maxForgetting ${c.maxForgetting}`);
    }
  } finally {
    bar.stop();
  }
  await saveHeads(runFiles(runDir).policy, trainer.heads, { seal: JSON.stringify(c), model: c.model }, false);
  return { trainer, metrics };
}

export async function trainCommand(dev: DeviceOptions, runDir: string, config: SealConfig, resume: boolean): Promise<void> {
  const gpu = await Gpu.create(dev);
  try {
    const { trainer } = await trainRun(gpu, runDir, config, resume);
    console.log(`wrote ${runFiles(runDir).policy} and ${runFiles(runDir).metrics}`);
    trainer.release();
  } finally {
    gpu.destroy();
  }
}

/** Flags that override config fields (undefined ones are left out). */
export function configFromFlags(o: Record<string, unknown>, file?: string): SealConfig {
  const mask = o.mask ? { tensors: String(o.mask).split(','), rows: o.maskRows, cols: o.maskCols } : undefined;
  const flags: Record<string, unknown> = {
    model: o.model,
    ...(mask ? { mask } : {}),
    edit: o.edit,
    rank: o.rank,
    alpha: o.alpha,
    penalty: o.penalty,
    features: o.features,
    algo: o.algo,
    iterations: o.iterations,
    batch: o.batch,
    group: o.group,
    epochs: o.epochs,
    stepLr: o.stepLr,
    deltaLr: o.deltaLr,
    stepLogStd: o.stepLogStd,
    learnStd: o.learnStd,
    seed: o.seed,
    latent: o.latent,
    initLogStd: o.initLogStd,
  };
  return resolveConfig(readConfigFile(file), flags);
}
