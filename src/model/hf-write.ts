// Random Llama-family checkpoints in Hugging Face's folder layout (config.json, model.safetensors
// or shards with model.safetensors.index.json, tokenizer.json, tokenizer_config.json): what the
// tests load, and, at real shapes (SMOLLM2_135M), what measures a model too big to keep in a test.
// One shard's tensors are in memory at a time. saveLlamaFolder writes a trained model the same way.
import { writeFileAtomic } from '../io/atomic.ts';
import { exists, joinPath as join, makeDirectory, readText } from '../io/files.ts';
import { byteLevelTokenizerJson } from '../io/hf-tokenizer.ts';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import { Rng } from '../util/random.ts';
import { INDEX_FILE } from './hf-llama.ts';
import { llamaParamSpecs, llamaToHf, validateLlama, type LlamaConfig } from './llama-config.ts';
import type { Llama } from './llama.ts';
import { trainingTensors } from './lm.ts';

/** SmolLM2-135M's shape (HuggingFaceTB/SmolLM2-135M's config.json). */
export const SMOLLM2_135M: LlamaConfig = {
  modelType: 'llama',
  vocabSize: 49152,
  nCtx: 8192,
  nLayer: 30,
  nEmbd: 576,
  nHead: 9,
  nKvHead: 3,
  headDim: 64,
  intermediate: 1536,
  ropeTheta: 100000,
  ropeScaling: null,
  rmsEps: 1e-5,
  tied: true,
  qkvBias: false,
};

export interface WriteOptions {
  seed?: number;
  /** Split the tensors over this many shard files with an index (default 1: model.safetensors). */
  shards?: number;
  /** Standard deviation of the weights (default 0.02; norms are 1, biases 0). */
  std?: number;
}

/** Writes a random checkpoint of `config` into `dir` (created if needed). */
export async function writeRandomLlama(dir: string, config: LlamaConfig, opts: WriteOptions = {}): Promise<void> {
  validateLlama(config);
  const rng = new Rng(opts.seed ?? 1);
  const std = opts.std ?? 0.02;
  const shards = opts.shards ?? 1;
  await makeDirectory(dir);
  const specs = llamaParamSpecs(config);
  const per = Math.ceil(specs.length / shards);
  const weightMap: Record<string, string> = {};
  let totalBytes = 0;
  for (let s = 0; s < shards; s++) {
    const file = shards === 1 ? 'model.safetensors' : `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const tensors: [string, TensorToWrite][] = specs.slice(s * per, (s + 1) * per).map((p) => {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const data = p.init === 'ones' ? new Float32Array(n).fill(1) : p.init === 'zeros' ? new Float32Array(n) : rng.normalArray(n, std);
      weightMap[p.name] = file;
      totalBytes += data.byteLength;
      return [p.name, { shape: p.shape, data }];
    });
    await writeSafetensors(join(dir, file), tensors, { format: 'pt' });
  }
  if (shards > 1) await writeFileAtomic(join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2));
  const tok = byteLevelTokenizerJson(config.vocabSize);
  await writeConfig(dir, config);
  await writeFileAtomic(join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
  await writeFileAtomic(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...tok.config, model_max_length: config.nCtx }, null, 2));
}

const writeConfig = (dir: string, config: LlamaConfig) => writeFileAtomic(join(dir, 'config.json'), JSON.stringify(llamaToHf(config), null, 2));

/**
 * Writes a model as a Hugging Face folder `dir` (created if needed): config.json, model.safetensors
 * (f32; f16 weights widened) and the tokenizer files of the folder it came from, `tokenizerDir`.
 */
export async function saveLlamaFolder(dir: string, model: Llama, tokenizerDir: string): Promise<void> {
  await makeDirectory(dir);
  await writeSafetensors(join(dir, 'model.safetensors'), await trainingTensors(model), { format: 'pt' });
  await writeConfig(dir, model.config);
  if (join(dir) === join(tokenizerDir)) return;
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
    if (await exists(join(tokenizerDir, file))) await writeFileAtomic(join(dir, file), await readText(join(tokenizerDir, file)));
  }
}
