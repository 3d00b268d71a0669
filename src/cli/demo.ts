// `seal demo` (npm start): on the bundled base model and data, a short SEAL training run (the
// meta-gradient generator), then the held-out evaluation against the baselines — their
// hyper-parameters chosen on validation by `seal tune` (data/tuned.json) — the comparison table and a
// report with charts.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { DEFAULT_SEAL, resolveConfig } from '../seal/config.ts';
import { loadSquad, toSquadFile, writeSquad } from '../tasks/squad.ts';
import { missingModel, runFiles } from '../seal/run.ts';
import { runEval } from './eval.ts';
import { trainRun } from './train.ts';
import { readTuned } from './tune.ts';
import { bundled } from '../io/files.ts';

/** The baselines' settings, chosen on the validation split by `seal tune --out data/tuned.json`. */
export const TUNED = bundled('tuned.json');

export interface DemoOptions {
  run: string;
  iterations: number;
  passages: number;
  seeds: number;
  /** A small version (a minute or two): a check that everything runs, not evidence. */
  quick?: boolean;
}

/**
 * What --quick shrinks: 8 rl-train passages, a few iterations without lookahead, 2 held-out
 * passages and fewer methods. Its numbers say that the pipeline runs, not what SEAL achieves.
 */
const QUICK = { trainPassages: 8, iterations: 4, validationCount: 4, passages: 2, general: 8, methods: 'base,fixed-sign,seal,random' };

export async function demoCommand(dev: DawnOptions, o: DemoOptions): Promise<void> {
  const t0 = performance.now();
  // A demo starts fresh: a previous demo run in the same folder is replaced.
  rmSync(o.run, { recursive: true, force: true });
  // The lookahead probe is the fixed sign step chosen on validation (a second gradient per passage).
  const lookahead = o.quick ? 0 : (readTuned(TUNED).fixed.sign?.best.value ?? 0);
  const iterations = o.quick ? QUICK.iterations : o.iterations;
  const quick = o.quick ? { data: { ...DEFAULT_SEAL.data, train: await quickTrainSplit(o.run) }, validationCount: QUICK.validationCount } : {};
  // Quick: validation only after the last iteration.
  const evalEvery = o.quick ? iterations : Math.max(1, Math.floor(iterations / 6));
  const config = resolveConfig({ iterations, evalEvery, lookahead, ...quick });
  if (!existsSync(config.model)) throw missingModel(config.model);
  console.log(`1/2  SEAL training${o.quick ? ' (quick: a check that it runs, not a result)' : ''}: ${config.iterations} iterations of ${config.batch} passages (${config.algo}, lookahead ${lookahead}), run in ${o.run}`);
  const gpu = await dawnGpu(dev);
  try {
    const { trainer, model } = await trainRun(gpu, o.run, config, false);
    trainer.release();
    model.release();
  } finally {
    gpu.destroy();
  }
  const files = runFiles(o.run);
  const passages = o.quick ? QUICK.passages : o.passages;
  console.log(`\n2/2  held-out evaluation: ${passages} passages never trained on, ${o.seeds} seeds`);
  await runEval(dev, {
    model: config.model,
    split: 'held-out',
    dataDir: bundled('knowledge'),
    methods: o.quick ? QUICK.methods : 'base,fixed-step,fixed-sign,finetune-mask,finetune-full,generator-init,seal,random',
    mask: config.mask.tensors.join(','),
    tuned: TUNED,
    finetuneSteps: 10,
    finetuneLr: 1e-3,
    randomNorm: 'seal',
    seeds: o.seeds,
    passages,
    general: o.quick ? QUICK.general : 32,
    maxNew: 16,
    report: join(o.run, 'report'),
    metrics: files.metrics,
    policy: files.policy,
  });
  console.log(`\ndemo finished in ${((performance.now() - t0) / 60000).toFixed(1)} min; report: ${join(o.run, 'report', 'report.md')}`);
}

/** The first QUICK.trainPassages rl-train passages, as a split file in the run folder. */
async function quickTrainSplit(run: string): Promise<string> {
  const file = join(run, 'rl-train-quick.json');
  mkdirSync(run, { recursive: true });
  await writeSquad(file, toSquadFile((await loadSquad(DEFAULT_SEAL.data.train)).slice(0, QUICK.trainPassages)));
  return file;
}
