// `seal train`: trains the edit generator (meta-gradient, PPO or ReST-EM) into a run directory.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import type { Gpu } from '../gpu/gpu.ts';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { mlpMask } from '../model/mask.ts';
import { DEFAULT_SEAL, resolveConfig, type SealConfig } from '../seal/config.ts';
import { readConfigFields, runFiles, trainGenerator, type TrainedRun, type TrainHooks } from '../seal/run.ts';
import type { IterationMetrics, SealData } from '../seal/trainer.ts';
// Scale-out (../scale/) loads only with --workers: a single-machine run does not load the queue's client.
import type { Learner, QueueOptions, QueueStats } from '../scale/remote-task.ts';
import { UserError } from '../util/errors.ts';

const fmt = (x: number | undefined, d = 3) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));

export function metricsLine(m: IterationMetrics): string {
  const ppo = m.approxKl !== undefined ? ` | kl ${fmt(m.approxKl, 4)} clip ${fmt(m.clipFraction, 2)}` : '';
  const kept = m.kept !== undefined ? ` | kept ${m.kept}` : '';
  const val = m.validationImprovement !== undefined ? ` | validation Δnll ${fmt(m.validationImprovement)} (measured ${fmt(m.validationMeasured)}) | forgetting ${fmt(m.forgetting)}` : '';
  return `iter ${m.iteration}: reward ${fmt(m.rewardMean)}±${fmt(m.rewardStd)} | Δnll scored ${fmt(m.improvement)} measured ${fmt(m.measuredImprovement)} | edit ‖Δ‖ ${fmt(m.editNorm)}${ppo}${kept} | ${(m.ms.total / 1000).toFixed(1)}s${val}${m.skipped ? ` | SKIPPED: ${m.skipped}` : ''}`;
}

/** One line on what scale-out cost: jobs, and per job the round trip against the worker's own time. */
export function queueLine(s: QueueStats): string {
  const per = (x: number) => (s.jobs ? x / s.jobs : 0);
  return `workers: ${s.jobs} jobs in ${s.rounds} rounds; per job ${per(s.wallMs).toFixed(0)} ms gathering, ${per(s.workerMs).toFixed(0)} ms on a worker; ${per(s.sentBytes).toFixed(0)} B sent, ${per(s.receivedBytes).toFixed(0)} B back; ${s.duplicates} duplicate and ${s.stale} stale results ignored, ${s.resent} jobs re-sent`;
}

/**
 * `trainGenerator` with a progress bar and a line per iteration on the terminal (none when `quiet`).
 * With `workers`, the training passages' edits are scored by `seal worker`s through that queue (the
 * run ends bit for bit where a single-process one would).
 */
export async function trainRun(
  gpu: Gpu,
  runDir: string,
  config: SealConfig,
  resume: boolean,
  quiet = false,
  stopAfter = Infinity,
  workers?: QueueOptions,
): Promise<TrainedRun & { queue?: QueueStats }> {
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
  let remote: Learner | undefined;
  const scoring = workers
    ? async (c: SealConfig, data: SealData) => {
        remote = await (await import('../scale/remote-task.ts')).connectLearner(workers, runDir, c, data.train);
        if (!quiet) console.log(`scoring on the workers of ${workers.url} (run ${remote.run.id}, base model sha256 ${remote.run.model.slice(0, 16)}…)`);
        return remote.scoring;
      }
    : undefined;
  try {
    const run = await trainGenerator(gpu, runDir, config, { resume, stopAfter, hooks, ...(scoring ? { scoring } : {}) });
    const { trainer, config: c } = run;
    const queue = (remote as Learner | undefined)?.queue.stats;
    if (queue && !quiet) console.log(queueLine(queue));
    if (!quiet && trainer.iteration < c.iterations) console.log(`stopped after iteration ${trainer.iteration} of ${c.iterations}; continue with --resume`);
    if (!quiet && trainer.best && trainer.iteration === c.iterations) console.log(`kept the generator as it was after ${trainer.best.iteration} iterations (best validation reward ${fmt(trainer.best.reward)})`);
    return { ...run, ...(queue ? { queue } : {}) };
  } finally {
    bar.stop();
    await (remote as Learner | undefined)?.queue.close();
  }
}

export async function trainCommand(dev: DawnOptions, runDir: string, config: SealConfig, resume: boolean, stopAfter = Infinity, workers?: QueueOptions): Promise<void> {
  // Before the GPU: an unreachable queue is said within seconds.
  if (workers) await (await import('../scale/queue.ts')).checkQueue(workers.url);
  const gpu = await dawnGpu(dev);
  try {
    const { trainer, model } = await trainRun(gpu, runDir, config, resume, false, stopAfter, workers);
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
  const fromFile = file ? await readConfigFields(file) : {};
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
