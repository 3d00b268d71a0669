// Finetuning a model on text (`seal finetune`): the whole model (AdamW on every tensor, as in
// pretraining) or a LoRA adapter (AdamW on the factors; the base file is not touched). Batches are
// windows of one shuffled token stream, drawn from (seed, step) alone, so a resumed run ends bit for
// bit where an uninterrupted one would. Checkpoints are written atomically every few steps.
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Tokenizer } from '../io/tokenizer.ts';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.ts';
import type { GPT2 } from '../model/gpt2.ts';
import { Lora, LoraOptimizer, type LoraSpec } from '../model/lora.ts';
import { learningRate, Optimizer, type OptimizeConfig } from '../model/optimize.ts';
import { UserError } from '../util/errors.ts';
import { batchAt, pretrainDocuments, tokenStream } from './corpus.ts';
import { loadSquad } from './squad.ts';

/** A SQuAD file (.json): each passage with its QA, as pretraining reads it; any other file: its paragraphs (blank-line separated). */
export async function finetuneDocuments(path: string): Promise<string[]> {
  if (path.endsWith('.json')) return pretrainDocuments(await loadSquad(path));
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UserError(`${path}: cannot read the text file (${e.code ?? e.message})`);
  });
  const docs = text.split(/\n\s*\n/).map((d) => d.trim()).filter(Boolean);
  if (docs.length === 0) throw new UserError(`${path}: no text to finetune on`);
  return docs;
}

export interface SftOptions {
  docs: readonly string[];
  out: string;
  /** A LoRA spec, or 'full' for every weight. */
  scope: LoraSpec | 'full';
  optimize: OptimizeConfig;
  batch: number;
  seq: number;
  seed: number;
  checkpointEvery: number;
  resume: boolean;
  onStep?: (s: { step: number; total: number; loss: number }) => void;
  onResume?: (step: number) => void;
}

interface SftState {
  seed: number;
  batch: number;
  seq: number;
  optimize: OptimizeConfig;
}

/**
 * Runs the finetune; the finished file at o.out is a model checkpoint (full) or a LoRA adapter for
 * `model` (lora). With scope 'full' the model's own weights are trained; resume reloads them.
 */
export async function sft(model: GPT2, tok: Tokenizer, o: SftOptions): Promise<{ losses: number[] }> {
  const gpu = model.gpu;
  if (o.seq > model.config.nCtx) throw new UserError(`--seq ${o.seq} is longer than the model's context (${model.config.nCtx})`);
  mkdirSync(dirname(o.out), { recursive: true });
  const stream = tokenStream(o.docs, tok, o.seed);
  if (stream.length < o.seq + 1) throw new UserError(`the text is ${stream.length} tokens, shorter than one window of --seq ${o.seq} + 1`);
  const state: SftState = { seed: o.seed, batch: o.batch, seq: o.seq, optimize: o.optimize };
  const check = (s: SftState | undefined) => {
    if (!s) throw new UserError(`${o.out}: has no training state to resume from (a finished run?)`);
    if (s.seed !== o.seed || s.batch !== o.batch || s.seq !== o.seq || s.optimize.totalSteps !== o.optimize.totalSteps) {
      throw new UserError(`${o.out}: was not started with these settings (seed, batch, seq, steps); resume with the same ones`);
    }
  };
  const resuming = o.resume && existsSync(o.out);
  const losses: number[] = [];
  let step: number;
  let update: (tokens: ReturnType<typeof gpu.tensor<'u32'>>, targets: ReturnType<typeof gpu.tensor<'u32'>>) => Promise<number>;
  let save: (final: boolean) => Promise<void>;
  let done: () => void;
  if (o.scope === 'full') {
    let opt: Optimizer;
    if (resuming) {
      const ck = await loadCheckpoint(gpu, o.out, { optimizer: true });
      check(ck.state as SftState | undefined);
      if (!ck.optimizer) throw new UserError(`${o.out}: has no optimizer state to resume from (a finished model?)`);
      for (const [n, t] of ck.model.params) gpu.copy(t, model.params.get(n)!);
      ck.model.release();
      opt = new Optimizer(model, o.optimize, ck.optimizer);
    } else opt = new Optimizer(model, o.optimize);
    step = opt.step;
    update = async (tt, tg) => (await opt.update(tt, tg)).loss;
    save = (final) => saveCheckpoint(o.out, model, { tokenizer: tok.name, ...(final ? {} : { state }) }, final ? undefined : opt);
    done = () => opt.release();
  } else {
    let lora: Lora;
    let opt: LoraOptimizer;
    const config = { lr: o.optimize.lr, weightDecay: o.optimize.weightDecay, gradClip: o.optimize.gradClip };
    if (resuming) {
      const ck = await Lora.load(model, o.out);
      check(ck.state as SftState | undefined);
      if (!ck.optimizer) throw new UserError(`${o.out}: has no optimizer state to resume from (a finished adapter?)`);
      lora = ck.lora;
      opt = new LoraOptimizer(model, lora, config, ck.optimizer);
    } else {
      lora = Lora.create(model, o.scope, o.seed);
      opt = new LoraOptimizer(model, lora, config);
    }
    step = opt.step;
    update = (tt, tg) => opt.update(tt, tg, undefined, learningRate(o.optimize, opt.step));
    save = (final) => lora.save(o.out, gpu, final ? undefined : state, final ? undefined : opt);
    done = () => {
      opt.release();
      lora.release();
    };
  }
  if (resuming) o.onResume?.(step);
  try {
    for (; step < o.optimize.totalSteps; ) {
      const { tokens, targets } = batchAt(stream, o.batch, o.seq, o.seed, step);
      const tt = gpu.tensor(tokens, [o.batch, o.seq]);
      const tg = gpu.tensor(targets, [o.batch, o.seq]);
      const loss = await update(tt, tg);
      tt.release();
      tg.release();
      step++;
      if (!Number.isFinite(loss)) throw new Error(`finetune: loss became ${loss} at step ${step}; lower --lr`);
      losses.push(loss);
      o.onStep?.({ step, total: o.optimize.totalSteps, loss });
      if (step % o.checkpointEvery === 0 && step < o.optimize.totalSteps) await save(false);
    }
    await save(true);
  } finally {
    done();
  }
  return { losses };
}
