// `seal finetune`: LoRA or full finetuning of a model on a text file or a SQuAD file.
import { SingleBar, Presets } from 'cli-progress';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { loadModel } from '../model/load.ts';
import { defaultLora, Lora } from '../model/lora.ts';
import { DEFAULT_OPTIMIZE } from '../model/optimize.ts';
import { finetuneDocuments, sft } from '../tasks/sft.ts';

export interface FinetuneCliOptions {
  model: string;
  data: string;
  out: string;
  full?: boolean;
  /** Comma-separated globs; default: every linear of the blocks (defaultLora). */
  targets?: string;
  rank: number;
  alpha: number;
  steps: number;
  lr: number;
  batch: number;
  seq?: number;
  seed: number;
  checkpointEvery: number;
  resume?: boolean;
}

export async function finetuneCommand(dev: DawnOptions, o: FinetuneCliOptions): Promise<void> {
  const docs = await finetuneDocuments(o.data);
  const gpu = await dawnGpu(dev);
  const { model, tokenizer } = await loadModel(gpu, o.model, { use: { train: o.full ? 'adam' : 'none', batch: o.batch, seq: o.seq ?? Infinity } });
  const bar = new SingleBar(
    { format: 'finetune |{bar}| {value}/{total} steps | loss {loss} | ETA {eta_formatted}', hideCursor: true, etaBuffer: 50, noTTYOutput: true, notTTYSchedule: 15_000 },
    Presets.shades_classic,
  );
  try {
    const scope = o.full ? 'full' : { targets: o.targets?.split(',') ?? defaultLora(model.kind).targets, rank: o.rank, alpha: o.alpha };
    if (scope !== 'full') Lora.targets(model, scope); // a bad target fails before the progress bar starts
    bar.start(o.steps, 0, { loss: '-' });
    const { losses } = await sft(model, tokenizer, {
      docs,
      out: o.out,
      scope,
      source: o.model,
      optimize: { ...DEFAULT_OPTIMIZE, lr: o.lr, totalSteps: o.steps, warmup: Math.min(DEFAULT_OPTIMIZE.warmup, Math.ceil(o.steps / 10)) },
      batch: o.batch,
      seq: o.seq ?? model.config.nCtx,
      seed: o.seed,
      checkpointEvery: o.checkpointEvery,
      resume: Boolean(o.resume),
      onResume: (step) => bar.update(step),
      onStep: (s) => bar.update(s.step, { loss: s.loss.toFixed(3) }),
    });
    bar.stop();
    const tail = losses.slice(-10);
    if (tail.length) console.log(`final loss (mean of last ${tail.length} steps): ${(tail.reduce((a, b) => a + b, 0) / tail.length).toFixed(4)}`);
    console.log(`wrote ${o.out} (${o.full ? (model.kind === 'gpt2' ? 'full model' : `full model: a Hugging Face ${model.kind} folder`) : 'LoRA adapter'})`);
  } finally {
    bar.stop();
    model.release();
    gpu.destroy();
  }
}
