// `seal pretrain`: trains a base model from scratch on the knowledge corpus's pretrain split.
import { SingleBar, Presets } from 'cli-progress';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { saveCheckpoint } from '../model/checkpoint.ts';
import { DEFAULT_OPTIMIZE } from '../model/optimize.ts';
import { loadSquad } from '../tasks/squad.ts';
import { pretrain } from '../tasks/pretrain.ts';

export interface PretrainCliOptions {
  data: string;
  out: string;
  layers: number;
  heads: number;
  width: number;
  ctx: number;
  batch: number;
  seq: number;
  steps: number;
  lr: number;
  seed: number;
  checkpointEvery: number;
  resume: boolean;
  passages?: number;
  selfEdits: number;
  init?: string;
}

export async function pretrainCommand(dev: DawnOptions, o: PretrainCliOptions): Promise<void> {
  const passages = (await loadSquad(o.data)).slice(0, o.passages);
  const gpu = await dawnGpu(dev);
  const bar = new SingleBar(
    { format: 'pretrain |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta_formatted}', hideCursor: true, etaBuffer: 50, noTTYOutput: true, notTTYSchedule: 15_000 },
    Presets.shades_classic,
  );
  try {
    bar.start(o.steps, 0, { loss: '-', tps: '-' });
    const { model, losses } = await pretrain(gpu, {
      passages,
      out: o.out,
      model: { vocabSize: 257, nCtx: o.ctx, nLayer: o.layers, nHead: o.heads, nEmbd: o.width },
      optimize: { ...DEFAULT_OPTIMIZE, lr: o.lr, totalSteps: o.steps },
      tokenizer: 'byte',
      batch: o.batch,
      seq: o.seq,
      seed: o.seed,
      checkpointEvery: o.checkpointEvery,
      selfEdits: o.selfEdits,
      ...(o.init ? { init: o.init } : {}),
      resume: o.resume,
      onResume: (step) => bar.update(step),
      onStep: (s) => bar.update(s.step, { loss: s.loss.toFixed(3), tps: Math.round(s.tokensPerSec) }),
    });
    bar.stop();
    // The finished model without optimizer state: what a user loads and what data/ ships.
    await saveCheckpoint(o.out, model, { tokenizer: 'byte' });
    const tail = losses.slice(-20);
    if (tail.length) console.log(`final loss (mean of last ${tail.length} steps): ${(tail.reduce((a, b) => a + b, 0) / tail.length).toFixed(4)}`);
    console.log(`wrote ${o.out}`);
  } finally {
    bar.stop();
    gpu.destroy();
  }
}
