// A SEAL training run on disk: the resolved config, metrics.jsonl (one line per iteration), and a
// checkpoint of the policy with its optimizer state, written atomically. A killed run resumes from
// its last checkpoint and, under the same seed, ends where an uninterrupted run would.
import { writeFileAtomic } from '../io/atomic.ts';
import { exists, joinPath, makeDirectory, readText } from '../io/files.ts';
import { resolveConfig, type SealConfig } from './config.ts';
import { Generator } from './generator.ts';
import type { IterationMetrics, SealTrainer, TrainerState } from './trainer.ts';
import { UserError } from '../util/errors.ts';

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
    const saved = resolveConfig(JSON.parse(await readText(f.config)) as Record<string, unknown>);
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
  await writeFileAtomic(f.config, JSON.stringify(config, null, 2) + '\n');
  await writeMetrics(dir, []);
  return { config, metrics: [] };
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
