// Model checkpoints as safetensors: parameters under their GPT-2 names, optional AdamW moments
// under `adam.m.*` / `adam.v.*`, and the config, tokenizer and training state as metadata.
// Written atomically (temp file + rename), so a killed run never leaves a torn checkpoint.
import type { Gpu } from '../gpu/gpu.ts';
import { SafetensorsError, withSafetensors, writeSafetensors } from '../io/safetensors.ts';
import { paramSpecs, validateConfig, type GPT2Config } from './config.ts';
import type { F32, Weight } from '../gpu/tensor.ts';
import { GPT2, type ParamMap, type WeightDtype } from './gpt2.ts';
import { readTraining, trainingTensors } from './lm.ts';
import type { Optimizer } from './optimize.ts';
import { readVersion } from '../util/format.ts';

const FORMAT = 'seal-webgpu/gpt2';
/** The checkpoint layout written now (metadata `version`); version 0 (none) is the same layout. */
export const CHECKPOINT_VERSION = 1;

export interface CheckpointMeta {
  tokenizer: string;
  /** Free-form JSON state of whoever wrote it (e.g. the pretrain run's step and config). */
  state?: unknown;
}

export async function saveCheckpoint(path: string, model: GPT2, meta: CheckpointMeta, optimizer?: Optimizer): Promise<void> {
  const tensors = await trainingTensors(model, optimizer);
  await writeSafetensors(path, tensors, {
    format: FORMAT,
    version: String(CHECKPOINT_VERSION),
    config: JSON.stringify(model.config),
    tokenizer: meta.tokenizer,
    ...(optimizer ? { step: String(optimizer.step) } : {}),
    ...(meta.state !== undefined ? { state: JSON.stringify(meta.state) } : {}),
  });
}

export interface LoadedCheckpoint {
  model: GPT2;
  tokenizer: string;
  /** AdamW state when the checkpoint has it. */
  optimizer?: { m: ParamMap; v: ParamMap; step: number };
  state?: unknown;
}

export async function loadCheckpoint(gpu: Gpu, path: string, opts: { optimizer?: boolean; dtype?: WeightDtype } = {}): Promise<LoadedCheckpoint> {
  return withSafetensors(path, async (f) => {
    if (f.metadata.format !== FORMAT || !f.metadata.config) {
      throw new SafetensorsError(`${path}: not a seal-webgpu checkpoint (no '${FORMAT}' metadata); for a Hugging Face GPT-2 file use the GPT-2 import`);
    }
    readVersion(path, 'checkpoint', f.metadata.version, CHECKPOINT_VERSION);
    const config = metadataJson(path, 'config', f.metadata.config, (x) => validateConfig(x as GPT2Config));
    const specs = paramSpecs(config);
    const read = <T extends Weight>(prefix: string, dtype: WeightDtype) => readTraining<T>(gpu, f, specs, prefix, dtype);
    const weights = await read<Weight>('', opts.dtype ?? 'f32');
    const model = new GPT2(gpu, config, weights);
    const result: LoadedCheckpoint = { model, tokenizer: f.metadata.tokenizer ?? 'byte' };
    if (f.metadata.state) result.state = metadataJson(path, 'state', f.metadata.state);
    if (opts.optimizer && f.metadata.step !== undefined) {
      result.optimizer = { m: await read<F32>('adam.m.', 'f32'), v: await read<F32>('adam.v.', 'f32'), step: Number(f.metadata.step) };
    }
    return result;
  });
}

/** A metadata field holding JSON, checked by `check`; a corrupt one is a named error. */
function metadataJson<T>(path: string, key: string, text: string, check: (x: unknown) => T = (x) => x as T): T {
  try {
    return check(JSON.parse(text));
  } catch (e) {
    throw new SafetensorsError(`${path}: metadata '${key}': ${(e as Error).message}`);
  }
}
