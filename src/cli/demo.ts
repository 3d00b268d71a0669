// `seal demo` (npm start): on the bundled base model and data, a short SEAL training run (the
// meta-gradient generator), then the held-out evaluation against the baselines — their
// hyper-parameters chosen on validation by `seal tune` (data/tuned.json) — the comparison table and a
// report with charts.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { resolveConfig } from '../seal/config.ts';
import { runFiles } from '../seal/run.ts';
import { runEval } from './eval.ts';
import { missingModel, trainRun } from './train.ts';
import { readTuned } from './tune.ts';

/** The baselines' settings, chosen on the validation split by `seal tune --out data/tuned.json`. */
export const TUNED = 'data/tuned.json';

export interface DemoOptions {
  run: string;
  iterations: number;
  passages: number;
  seeds: number;
}

export async function demoCommand(dev: DawnOptions, o: DemoOptions): Promise<void> {
  const t0 = performance.now();
  // The lookahead probe is the fixed sign step chosen on validation (a second gradient per passage).
  const lookahead = readTuned(TUNED).fixed.sign?.best.value ?? 0;
  const config = resolveConfig({ iterations: o.iterations, evalEvery: Math.max(1, Math.floor(o.iterations / 6)), lookahead });
  if (!existsSync(config.model)) throw missingModel(config.model);
  // A demo starts fresh: a previous demo run in the same folder is replaced.
  rmSync(o.run, { recursive: true, force: true });
  console.log(`1/2  SEAL training: ${config.iterations} iterations of ${config.batch} passages (${config.algo}, lookahead ${lookahead}), run in ${o.run}`);
  const gpu = await dawnGpu(dev);
  try {
    const { trainer, model } = await trainRun(gpu, o.run, config, false);
    trainer.release();
    model.release();
  } finally {
    gpu.destroy();
  }
  const files = runFiles(o.run);
  console.log(`\n2/2  held-out evaluation: ${o.passages} passages never trained on, ${o.seeds} seeds`);
  await runEval(dev, {
    model: config.model,
    split: 'held-out',
    dataDir: 'data/knowledge',
    methods: 'base,fixed-step,fixed-sign,finetune-mask,finetune-full,generator-init,seal,random',
    mask: config.mask.tensors.join(','),
    tuned: TUNED,
    finetuneSteps: 10,
    finetuneLr: 1e-3,
    randomNorm: 'seal',
    seeds: o.seeds,
    passages: o.passages,
    general: 32,
    maxNew: 16,
    report: join(o.run, 'report'),
    metrics: files.metrics,
    policy: files.policy,
  });
  console.log(`\ndemo finished in ${((performance.now() - t0) / 60000).toFixed(1)} min; report: ${join(o.run, 'report', 'report.md')}`);
}
