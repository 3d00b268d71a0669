// Named model shapes, and random-initialised Hugging Face checkpoints of them: what `seal bench
// --model <shape>` measures and what a new user can load without downloading a model. A shape is
// a family (the architecture that loads it) and a config; another family plugs in by adding its
// entries and its writer of HF-layout files.
import { writeFileAtomic } from '../io/atomic.ts';
import { joinPath, makeDirectory } from '../io/files.ts';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import { GPT2_SMALL, paramSpecs, type GPT2Config } from './config.ts';
import { SMOLLM2_135M, writeRandomLlama } from './hf-write.ts';
import type { LlamaConfig } from './llama-config.ts';

/** A family and its config; `seq`: tokens per sequence the bench runs (the context is the config's). */
export type ModelShape = { family: 'gpt2'; config: GPT2Config; seq: number } | { family: 'llama'; config: LlamaConfig; seq: number };

export const MODEL_SHAPES: Record<string, ModelShape> = {
  'gpt2-small': { family: 'gpt2', config: GPT2_SMALL, seq: 64 },
  'gpt2-tiny': { family: 'gpt2', config: { vocabSize: 257, nCtx: 128, nLayer: 2, nHead: 4, nEmbd: 128 }, seq: 64 },
  'smollm2-135m': { family: 'llama', config: SMOLLM2_135M, seq: 64 },
};

export function modelShape(name: string): ModelShape {
  const s = MODEL_SHAPES[name];
  if (!s) throw new UserError(`unknown model shape '${name}': choose one of ${Object.keys(MODEL_SHAPES).join(', ')}`);
  return s;
}

/** GPT-2's initialisation, as GPT2.init, on the host: N(0, 0.02), residual projections scaled by 1/√(2L). */
export function randomGpt2Weights(config: GPT2Config, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const residualStd = 0.02 / Math.sqrt(2 * config.nLayer);
  return new Map(
    paramSpecs(config).map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const data = s.init === 'ones' ? new Float32Array(n).fill(1) : s.init === 'zeros' ? new Float32Array(n) : rng.normalArray(n, s.init === 'residual' ? residualStd : 0.02);
      return [s.name, data];
    }),
  );
}

/**
 * Writes a random Hugging Face checkpoint of the shape into `dir`: GPT-2 as `model.safetensors` (HF
 * names, `transformer.` prefix, F32) and `config.json`; a Llama-family folder as hf-write.ts does.
 */
export async function writeRandomCheckpoint(dir: string, shape: ModelShape, seed = 1): Promise<void> {
  if (shape.family === 'llama') return writeRandomLlama(dir, shape.config, { seed });
  const c = shape.config;
  await makeDirectory(dir);
  const weights = randomGpt2Weights(c, seed);
  const tensors: [string, TensorToWrite][] = paramSpecs(c).map((s) => [`transformer.${s.name}`, { shape: s.shape, data: weights.get(s.name)! }]);
  await writeSafetensors(joinPath(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const hf = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: c.vocabSize,
    n_positions: c.nCtx,
    n_ctx: c.nCtx,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_embd: c.nEmbd,
    tie_word_embeddings: true,
  };
  await writeFileAtomic(joinPath(dir, 'config.json'), `${JSON.stringify(hf, null, 2)}\n`);
}
