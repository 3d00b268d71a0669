// Finetuning a model of either family on text (`seal finetune`): the whole model (AdamW on every
// tensor, as in pretraining) or a LoRA adapter (AdamW on the factors; the base file is not touched).
// Batches are windows of one shuffled token stream, drawn from (seed, step) alone, so a resumed run
// ends bit for bit where an uninterrupted one would. Checkpoints are written atomically every few
// steps. A full GPT-2 finetune writes our checkpoint file; a full Llama-family one a Hugging Face
// folder, its resumable state (weights and AdamW's moments) in training.safetensors there until
// the run finishes.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { withSafetensors, writeSafetensors } from '../io/safetensors.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { F32, Weight } from '../gpu/tensor.ts';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.ts';
import { GPT2 } from '../model/gpt2.ts';
import { saveLlamaFolder } from '../model/hf-write.ts';
import { llamaParamSpecs } from '../model/llama-config.ts';
import { Llama } from '../model/llama.ts';
import { readTraining, trainingTensors, type LanguageModel, type ParamMap } from '../model/lm.ts';
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
  /** A Llama-family model's folder: a full finetune copies its tokenizer files into the output folder. */
  source?: string;
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

const TRAINING = 'training.safetensors';

/** Where a full finetune keeps its checkpoints: our checkpoint file (GPT-2) or a Hugging Face folder (the Llama family). */
interface FullCheckpoints {
  /** Puts the saved weights into the model; what was saved with them. */
  resume(): Promise<{ state?: unknown; optimizer?: { m: ParamMap; v: ParamMap; step: number } }>;
  /** A checkpoint to resume from (with the training state), or the finished model (without). */
  save(training?: { state: SftState; opt: Optimizer }): Promise<void>;
}

function fullCheckpoints(model: LanguageModel, tok: Tokenizer, out: string, source: string | undefined): FullCheckpoints {
  const gpu = model.gpu;
  if (model instanceof GPT2) {
    return {
      async resume() {
        const ck = await loadCheckpoint(gpu, out, { optimizer: true });
        for (const [n, t] of ck.model.params) gpu.copy(t, model.params.get(n)!);
        ck.model.release();
        return ck;
      },
      save: (t) => saveCheckpoint(out, model, { tokenizer: tok.name, ...(t ? { state: t.state } : {}) }, t?.opt),
    };
  }
  if (!(model instanceof Llama) || !source) throw new Error(`sft: no full-finetune checkpoints for ${model.kind} models${source ? '' : ' without their source folder'}`);
  const file = join(out, TRAINING);
  return {
    resume: () =>
      withSafetensors(file, async (f) => {
        const specs = llamaParamSpecs(model.config);
        const weights = await readTraining<Weight>(gpu, f, specs, '', model.dtype);
        for (const [n, t] of weights) gpu.copy(t, model.params.get(n)!), t.release();
        const read = (prefix: string) => readTraining<F32>(gpu, f, specs, prefix, 'f32');
        return { state: JSON.parse(f.metadata.state!) as unknown, optimizer: { m: await read('adam.m.'), v: await read('adam.v.'), step: Number(f.metadata.step) } };
      }),
    async save(t) {
      if (t) {
        mkdirSync(out, { recursive: true });
        return writeSafetensors(file, await trainingTensors(model, t.opt), { step: String(t.opt.step), state: JSON.stringify(t.state) });
      }
      await saveLlamaFolder(out, model, source);
      rmSync(file, { force: true });
    },
  };
}

/**
 * Runs the finetune; the finished o.out is a model (full: a checkpoint file for GPT-2, a Hugging
 * Face folder for the Llama family) or a LoRA adapter for `model`. With scope 'full' the model's own
 * weights are trained; resume reloads them.
 */
export async function sft(model: LanguageModel, tok: Tokenizer, o: SftOptions): Promise<{ losses: number[] }> {
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
  // A Llama-family full finetune resumes from its folder's training state.
  const resuming = o.resume && existsSync(o.scope === 'full' && !(model instanceof GPT2) ? join(o.out, TRAINING) : o.out);
  const losses: number[] = [];
  let step: number;
  let update: (tokens: ReturnType<typeof gpu.tensor<'u32'>>, targets: ReturnType<typeof gpu.tensor<'u32'>>) => Promise<number>;
  let save: (final: boolean) => Promise<void>;
  let done: () => void;
  if (o.scope === 'full') {
    const ckpts = fullCheckpoints(model, tok, o.out, o.source);
    let opt: Optimizer;
    if (resuming) {
      const ck = await ckpts.resume();
      check(ck.state as SftState | undefined);
      if (!ck.optimizer) throw new UserError(`${o.out}: has no optimizer state to resume from (a finished model?)`);
      opt = new Optimizer(model, o.optimize, ck.optimizer);
    } else opt = new Optimizer(model, o.optimize);
    step = opt.step;
    update = async (tt, tg) => (await opt.update(tt, tg)).loss;
    save = (final) => ckpts.save(final ? undefined : { state, opt });
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
