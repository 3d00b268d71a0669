// `seal train`: trains the edit generator (meta-gradient, PPO or ReST-EM) into a run directory.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { Gpu } from '../gpu/gpu.ts';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import type { LanguageModel } from '../model/lm.ts';
import { loadModel } from '../model/load.ts';
import { mlpMask } from '../model/mask.ts';
import { DEFAULT_SEAL, resolveConfig, type SealConfig } from '../seal/config.ts';
import { openRun, runFiles, saveCheckpoint, writeMetrics } from '../seal/run.ts';
import { SealTrainer, type IterationMetrics } from '../seal/trainer.ts';
import { Generator } from '../seal/generator.ts';
import { loadSquad } from '../tasks/squad.ts';
import { UserError } from '../util/errors.ts';

export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`--config ${path}: ${(e as Error).message}`);
  }
}

export const readLines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

export function missingModel(path: string): UserError {
  return new UserError(`base model ${path} not found. Make one with: seal pretrain --out ${path}   (the README gives the exact command for the bundled model)`);
}

const fmt = (x: number | undefined, d = 3) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));

export function metricsLine(m: IterationMetrics): string {
  const ppo = m.approxKl !== undefined ? ` | kl ${fmt(m.approxKl, 4)} clip ${fmt(m.clipFraction, 2)}` : '';
  const kept = m.kept !== undefined ? ` | kept ${m.kept}` : '';
  const val = m.validationImprovement !== undefined ? ` | validation Δnll ${fmt(m.validationImprovement)} (measured ${fmt(m.validationMeasured)}) | forgetting ${fmt(m.forgetting)}` : '';
  return `iter ${m.iteration}: reward ${fmt(m.rewardMean)}±${fmt(m.rewardStd)} | Δnll scored ${fmt(m.improvement)} measured ${fmt(m.measuredImprovement)} | edit ‖Δ‖ ${fmt(m.editNorm)}${ppo}${kept} | ${(m.ms.total / 1000).toFixed(1)}s${val}${m.skipped ? ` | SKIPPED: ${m.skipped}` : ''}`;
}

/** Trains a SEAL generator; returns the trainer, the base model it edits, and the metrics of every iteration (resumed ones included). */
export async function trainRun(gpu: Gpu, runDir: string, config: SealConfig, resume: boolean, quiet = false, stopAfter = Infinity): Promise<{ trainer: SealTrainer; model: LanguageModel; metrics: IterationMetrics[] }> {
  const run = await openRun(runDir, config, resume);
  const c = run.config;
  if (!existsSync(c.model)) throw missingModel(c.model);
  const { model, tokenizer: tok } = await loadModel(gpu, c.model);
  const data = { train: await loadSquad(c.data.train), validation: await loadSquad(c.data.validation), general: readLines(c.data.general) };
  const bar = new SingleBar(
    { format: '{stage} |{bar}| {value}/{total} | {info} | ETA {eta_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 15_000 },
    Presets.shades_classic,
  );
  if (!quiet) bar.start(data.train.length + Math.min(c.validationCount, data.validation.length), 0, { stage: 'features', info: 'base model embeddings and gradients' });
  const trainer = await SealTrainer.create(model, tok, c, data, run.state, (done) => !quiet && bar.update(done));
  if (!quiet) {
    bar.stop();
    if (run.state) console.log(`resuming ${runDir} at iteration ${run.state.iteration}`);
    console.log(`mask ${c.mask.tensors.join(', ')}; the generator gives ${trainer.generator.actionDim} coefficients (${c.directions.join(' + ')} directions per tensor); ${c.algo.toUpperCase()}`);
    bar.start(c.iterations, trainer.iteration, { stage: 'train', info: '' });
  }
  const metrics = run.metrics;
  const stopAt = Math.min(c.iterations, trainer.iteration + stopAfter);
  try {
    while (trainer.iteration < stopAt) {
      const m = await trainer.step();
      metrics.push(m);
      await writeMetrics(runDir, metrics);
      if (trainer.iteration % c.checkpointEvery === 0 || trainer.iteration === stopAt) await saveCheckpoint(runDir, trainer);
      if (!quiet) {
        bar.update(trainer.iteration, { info: `reward ${fmt(m.rewardMean)} | ${(m.ms.total / 1000).toFixed(1)} s/iter` });
        bar.stop();
        console.log(metricsLine(m));
        if (trainer.iteration < c.iterations) bar.start(c.iterations, trainer.iteration, { stage: 'train', info: '' });
      }
      if (m.editNorm > c.maxEditNorm) throw new UserError(`stopped: mean edit norm ${m.editNorm.toFixed(3)} passed maxEditNorm ${c.maxEditNorm} (raise --penalty)`);
      if (m.forgetting !== undefined && m.forgetting > c.maxForgetting) throw new UserError(`stopped: forgetting ${m.forgetting.toFixed(3)} passed maxForgetting ${c.maxForgetting}`);
    }
  } finally {
    bar.stop();
  }
  if (trainer.iteration < c.iterations) {
    if (!quiet) console.log(`stopped after iteration ${trainer.iteration} of ${c.iterations}; continue with --resume`);
    return { trainer, model, metrics };
  }
  // The generator kept is the one with the best validation reward (early stopping on validation).
  const best = trainer.best;
  const meta = { seal: JSON.stringify(c), model: c.model, ...(best ? { bestIteration: String(best.iteration), validationReward: String(best.reward) } : {}) };
  if (best) await Generator.write(runFiles(runDir).policy, trainer.generator.policy.params, best.arrays, meta);
  else await trainer.generator.save(runFiles(runDir).policy, meta, false);
  if (!quiet && best) console.log(`kept the generator as it was after ${best.iteration} iterations (best validation reward ${fmt(best.reward)})`);
  return { trainer, model, metrics };
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
export function configFromFlags(o: Record<string, unknown>, file?: string): SealConfig {
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
  const fromFile = readConfigFile(file);
  // No mask given: every MLP weight matrix of the model's own family.
  const model = String(o.model ?? fromFile.model ?? DEFAULT_SEAL.model);
  const defaults = mask || fromFile.mask ? {} : { mask: { tensors: mlpMask(modelKind(model)) } };
  return resolveConfig(defaults, fromFile, flags);
}

/** A Hugging Face folder's model_type; otherwise (a file, a folder without one) GPT-2. */
function modelKind(path: string): string {
  const config = join(path, 'config.json');
  if (!(existsSync(path) && statSync(path).isDirectory() && existsSync(config))) return 'gpt2';
  try {
    return String((JSON.parse(readFileSync(config, 'utf8')) as { model_type?: unknown }).model_type ?? 'gpt2');
  } catch {
    return 'gpt2';
  }
}
