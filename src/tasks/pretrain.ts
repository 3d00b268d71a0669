// Pretraining a base model on the knowledge corpus, with periodic atomic checkpoints and resume.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Gpu } from '../gpu/gpu.ts';
import { tokenizerFromName } from '../io/tokenizer.ts';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.ts';
import type { GPT2Config } from '../model/config.ts';
import { GPT2 } from '../model/gpt2.ts';
import { Optimizer, type OptimizeConfig } from '../model/optimize.ts';
import { batchAt, pretrainDocuments, tokenStream } from './corpus.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import type { Passage } from './squad.ts';

export interface PretrainOptions {
  passages: readonly Passage[];
  out: string;
  model: GPT2Config;
  optimize: OptimizeConfig;
  tokenizer: string;
  batch: number;
  seq: number;
  seed: number;
  checkpointEvery: number;
  /**
   * Start from this checkpoint instead of a fresh init (its layers, heads and width must match
   * `model`); a longer `model.nCtx` extends its position table with freshly initialised rows.
   */
  init?: string;
  /** Template self-edit documents per passage (variant B's base); 0 or absent: none. */
  selfEdits?: number;
  /** Continue from `out` when it holds an unfinished run. */
  resume: boolean;
  onStep?: (s: { step: number; total: number; loss: number; gradNorm: number; lr: number; tokensPerSec: number }) => void;
  onResume?: (step: number) => void;
}

interface RunState {
  seed: number;
  batch: number;
  seq: number;
  /** The optimisation config; the key is part of the checkpoint's metadata, so it keeps its name. */
  train: OptimizeConfig;
}

export async function pretrain(gpu: Gpu, o: PretrainOptions): Promise<{ model: GPT2; losses: number[] }> {
  if (o.seq > o.model.nCtx) throw new UserError(`--seq ${o.seq} is longer than the model's context (${o.model.nCtx})`);
  const tok = tokenizerFromName(o.tokenizer);
  if (tok.vocabSize !== o.model.vocabSize) throw new UserError(`tokenizer '${tok.name}' has ${tok.vocabSize} tokens; the model's vocabulary is ${o.model.vocabSize}`);
  mkdirSync(dirname(o.out), { recursive: true });
  const stream = tokenStream(pretrainDocuments(o.passages, o.selfEdits ? { perPassage: o.selfEdits, seed: o.seed } : undefined), tok, o.seed);
  let model: GPT2;
  let optimizer: Optimizer;
  if (o.resume && existsSync(o.out)) {
    const ck = await loadCheckpoint(gpu, o.out, { optimizer: true, dtype: gpu.weightDtype });
    const s = ck.state as RunState | undefined;
    if (!ck.optimizer || !s) throw new UserError(`${o.out}: has no training state to resume from (a finished or exported model?)`);
    if (s.seed !== o.seed || s.batch !== o.batch || s.seq !== o.seq) {
      throw new UserError(`${o.out}: was trained with seed ${s.seed}, batch ${s.batch}, seq ${s.seq}; resume with the same settings`);
    }
    model = ck.model;
    optimizer = new Optimizer(model, s.train, ck.optimizer);
    o.onResume?.(optimizer.step);
  } else if (o.init) {
    model = await warmStart(gpu, o.init, o.model, o.seed);
    optimizer = new Optimizer(model, o.optimize);
  } else {
    model = GPT2.init(gpu, o.model, o.seed, gpu.weightDtype);
    optimizer = new Optimizer(model, o.optimize);
  }
  const state: RunState = { seed: o.seed, batch: o.batch, seq: o.seq, train: optimizer.config };
  const losses: number[] = [];
  const total = optimizer.config.totalSteps;
  let t0 = performance.now();
  while (optimizer.step < total) {
    const { tokens, targets } = batchAt(stream, o.batch, o.seq, o.seed, optimizer.step);
    const tt = gpu.tensor(tokens, [o.batch, o.seq]);
    const tg = gpu.tensor(targets, [o.batch, o.seq]);
    const r = await optimizer.update(tt, tg);
    tt.release();
    tg.release();
    if (!Number.isFinite(r.loss)) throw new Error(`pretrain: loss became ${r.loss} at step ${optimizer.step}; lower --lr`);
    losses.push(r.loss);
    const now = performance.now();
    o.onStep?.({ step: optimizer.step, total, ...r, tokensPerSec: (o.batch * o.seq * 1000) / (now - t0) });
    t0 = now;
    if (optimizer.step % o.checkpointEvery === 0 || optimizer.step === total) {
      await saveCheckpoint(o.out, model, { tokenizer: tok.name, state }, optimizer);
    }
  }
  optimizer.release();
  return { model, losses };
}

/** The checkpoint at `path` as a model of `config`: same blocks, a position table of config.nCtx rows. */
async function warmStart(gpu: Gpu, path: string, config: GPT2Config, seed: number): Promise<GPT2> {
  const ck = await loadCheckpoint(gpu, path);
  const from = ck.model.config;
  const arrays = await ck.model.toArrays();
  ck.model.release();
  if (from.nLayer !== config.nLayer || from.nHead !== config.nHead || from.nEmbd !== config.nEmbd || from.vocabSize !== config.vocabSize) {
    throw new UserError(`--init ${path}: has ${from.nLayer} layers, ${from.nHead} heads, width ${from.nEmbd}, vocabulary ${from.vocabSize}; give the same --layers, --heads, --width`);
  }
  if (config.nCtx < from.nCtx) throw new UserError(`--init ${path}: its context is ${from.nCtx}; --ctx ${config.nCtx} would drop positions`);
  // New positions start as GPT-2 initialises them; the learned ones are kept.
  const wpe = new Rng(seed).normalArray(config.nCtx * config.nEmbd, 0.02);
  wpe.set(arrays.get('wpe.weight')!);
  arrays.set('wpe.weight', wpe);
  return GPT2.fromArrays(gpu, config, arrays);
}
