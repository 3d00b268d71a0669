// A SEAL training run on disk: the resolved config, metrics.jsonl (one line per iteration), and a
// checkpoint of the policy with its optimizer state, written atomically. A killed run resumes from
// its last checkpoint and, under the same seed, ends where an uninterrupted run would.
import type { Gpu } from '../gpu/gpu.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { exists, joinPath, makeDirectory, readText } from '../io/files.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel } from '../model/lm.ts';
import { loadModel } from '../model/load.ts';
import { loadSquad } from '../tasks/squad.ts';
import { resolveConfig, type SealConfig } from './config.ts';
import { Generator } from './generator.ts';
import type { EditTask } from './task.ts';
import { SealTrainer, type IterationMetrics, type SealData, type TrainerState } from './trainer.ts';
import { UserError } from '../util/errors.ts';
import { readVersion } from '../util/format.ts';

/** The run directory layout written now, as config.json's `version`; version 0 (none) is the same layout. */
export const RUN_VERSION = 1;

export const runFiles = (dir: string) => ({
  config: joinPath(dir, 'config.json'),
  metrics: joinPath(dir, 'metrics.jsonl'),
  checkpoint: joinPath(dir, 'checkpoint.safetensors'),
  policy: joinPath(dir, 'policy.safetensors'),
});

/** Starts a run directory, or reopens one to resume (its saved config wins; flags may not change it). */
export async function openRun(dir: string, config: SealConfig, resume: boolean): Promise<{ config: SealConfig; state?: TrainerState; metrics: IterationMetrics[] }> {
  const f = runFiles(dir);
  if (resume && (await exists(f.checkpoint))) {
    const saved = resolveConfig(await readConfigFields(f.config));
    const state = await readCheckpoint(f.checkpoint);
    // Lines past the checkpoint belong to iterations that will run again.
    const metrics = (await exists(f.metrics))
      ? (await readText(f.metrics)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as IterationMetrics).filter((m) => m.iteration < state.iteration)
      : [];
    await writeMetrics(dir, metrics);
    return { config: saved, state, metrics };
  }
  if (!resume && (await exists(f.checkpoint))) throw new UserError(`${dir} already holds a run; pass --resume to continue it or choose another --run`);
  await makeDirectory(dir);
  await writeFileAtomic(f.config, JSON.stringify({ version: RUN_VERSION, ...config }, null, 2) + '\n');
  await writeMetrics(dir, []);
  return { config, metrics: [] };
}

/**
 * The config fields of a JSON file: a run's config.json (its version checked and set aside) or a
 * file of fields for --config.
 */
export async function readConfigFields(path: string): Promise<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(await readText(path));
  } catch (e) {
    throw new UserError(`${path}: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`${path}: a config is a JSON object`);
  const { version, ...fields } = json as Record<string, unknown>;
  readVersion(path, 'run directory', version, RUN_VERSION);
  return fields;
}

export async function writeMetrics(dir: string, metrics: readonly IterationMetrics[]): Promise<void> {
  await writeFileAtomic(runFiles(dir).metrics, metrics.map((m) => JSON.stringify(m) + '\n').join(''));
}

/** The generator with its Adam moments, the counters, and the best-on-validation snapshot (`best.<param>`). */
export async function saveCheckpoint(dir: string, trainer: SealTrainer): Promise<void> {
  const best = trainer.best;
  await trainer.generator.save(
    runFiles(dir).checkpoint,
    { iteration: String(trainer.iteration), adamStep: String(trainer.adamStep), ...(best ? { best: JSON.stringify({ iteration: best.iteration, reward: best.reward }) } : {}) },
    true,
    best?.arrays,
  );
}

async function readCheckpoint(path: string): Promise<TrainerState> {
  const { arrays, metadata } = await Generator.read(path);
  const generator = new Map([...arrays].filter(([k]) => !k.startsWith('best.')));
  const state: TrainerState = { generator, adamStep: Number(metadata.adamStep), iteration: Number(metadata.iteration) };
  if (!Number.isInteger(state.iteration) || !Number.isInteger(state.adamStep)) throw new UserError(`${path}: checkpoint metadata lacks iteration/adamStep`);
  if (metadata.best) {
    const b = JSON.parse(metadata.best) as { iteration: number; reward: number };
    state.best = { ...b, arrays: new Map([...arrays].filter(([k]) => k.startsWith('best.')).map(([k, v]) => [k.slice(5), v])) };
  }
  return state;
}

export function missingModel(path: string): UserError {
  return new UserError(`base model ${path} not found. Make one with: seal pretrain --out ${path}   (the README gives the exact command for the bundled model)`);
}

export const readLines = async (path: string) =>
  (await readText(path))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** What a caller may watch while a generator trains (the CLI draws its progress bar from these). */
export interface TrainHooks {
  /** Features of `done` of `total` passages computed (first called with 0). */
  onFeatures?(done: number, total: number): void;
  /** Features done; training starts at trainer.iteration (past 0 when resumed). */
  onStart?(trainer: SealTrainer, config: SealConfig, resumed: boolean): void;
  onIteration?(m: IterationMetrics, trainer: SealTrainer, config: SealConfig): void;
}

export interface TrainOptions {
  resume?: boolean;
  /** Stop after this many iterations, checkpointed (continue with resume). */
  stopAfter?: number;
  hooks?: TrainHooks;
  /** Where the training passages' edits are scored, given the run's config and data (default: here; cli/train.ts: workers). */
  scoring?: (config: SealConfig, data: SealData) => Promise<(local: EditTask, generator: Generator) => EditTask>;
}

export interface TrainedRun {
  trainer: SealTrainer;
  /** The frozen base model the generator edits, and its tokenizer. */
  model: LanguageModel;
  tokenizer: Tokenizer;
  /** The config the run used (a resumed run's saved one). */
  config: SealConfig;
  /** Every iteration's metrics, resumed ones included. */
  metrics: IterationMetrics[];
}

/**
 * Trains a SEAL generator into `runDir` (config.json, metrics.jsonl, checkpoints; policy.safetensors
 * once all iterations are done: the generator of the best validation iteration). `stopAfter` stops
 * early, checkpointed, to continue with `resume`. The caller releases the trainer and the model.
 */
export async function trainGenerator(gpu: Gpu, runDir: string, config: SealConfig, o: TrainOptions = {}): Promise<TrainedRun> {
  const run = await openRun(runDir, config, o.resume ?? false);
  const c = run.config;
  const hooks = o.hooks ?? {};
  if (!(await exists(c.model))) throw missingModel(c.model);
  const data = { train: await loadSquad(c.data.train), validation: await loadSquad(c.data.validation), general: await readLines(c.data.general) };
  // Before the model loads: a queue that cannot take the run is said before any GPU work.
  const scoring = await o.scoring?.(c, data);
  const { model, tokenizer } = await loadModel(gpu, c.model);
  const total = data.train.length + Math.min(c.validationCount, data.validation.length);
  hooks.onFeatures?.(0, total);
  const trainer = await SealTrainer.create(model, tokenizer, c, data, run.state, (done) => hooks.onFeatures?.(done, total), scoring);
  hooks.onStart?.(trainer, c, run.state !== undefined);
  const metrics = run.metrics;
  const stopAt = Math.min(c.iterations, trainer.iteration + (o.stopAfter ?? Infinity));
  while (trainer.iteration < stopAt) {
    const m = await trainer.step();
    metrics.push(m);
    await writeMetrics(runDir, metrics);
    if (trainer.iteration % c.checkpointEvery === 0 || trainer.iteration === stopAt) await saveCheckpoint(runDir, trainer);
    hooks.onIteration?.(m, trainer, c);
    if (m.editNorm > c.maxEditNorm) throw new UserError(`stopped: mean edit norm ${m.editNorm.toFixed(3)} passed maxEditNorm ${c.maxEditNorm} (raise --penalty)`);
    if (m.forgetting !== undefined && m.forgetting > c.maxForgetting) throw new UserError(`stopped: forgetting ${m.forgetting.toFixed(3)} passed maxForgetting ${c.maxForgetting}`);
  }
  if (trainer.iteration === c.iterations) {
    // The generator kept is the one with the best validation reward (early stopping on validation).
    const best = trainer.best;
    const meta = { seal: JSON.stringify(c), model: c.model, ...(best ? { bestIteration: String(best.iteration), validationReward: String(best.reward) } : {}) };
    if (best) await Generator.write(runFiles(runDir).policy, trainer.generator.policy.params, best.arrays, meta);
    else await trainer.generator.save(runFiles(runDir).policy, meta, false);
  }
  return { trainer, model, tokenizer, config: c, metrics };
}
