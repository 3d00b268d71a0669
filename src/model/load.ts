// Loading any model file we know, with its tokenizer: our checkpoints (safetensors whose metadata
// format is 'seal-webgpu/gpt2') and Hugging Face GPT-2 model.safetensors files. A directory means
// the model.safetensors inside it. The model must fit the adapter's memory (model/memory.ts): that
// is checked before anything is put on the GPU, with a message naming needed and available bytes.
import type { Gpu } from '../gpu/gpu.ts';
import { loadGpt2Weights, ourName, type LoadGpt2Options } from './hf-import.ts';
import { isDirectory, joinPath } from '../io/files.ts';
import { withSafetensors } from '../io/safetensors.ts';
import { byteTokenizer, gpt2Tokenizer, tokenizerFromName, type Tokenizer } from '../io/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { GPT2, type WeightDtype } from './gpt2.ts';
import { checkFits, INFERENCE, type ModelUse } from './memory.ts';
import { validateConfig, type GPT2Config } from './config.ts';

/** The metadata format saveCheckpoint writes. */
const CHECKPOINT_FORMAT = 'seal-webgpu/gpt2';

export interface LoadedModel {
  model: GPT2;
  tokenizer: Tokenizer;
  /** Which kind of file it was. */
  format: 'seal' | 'huggingface';
}

export interface LoadModelOptions extends LoadGpt2Options {
  /** Tokenizer name, overriding the checkpoint's (or, for an HF file, the one its vocabulary implies). */
  tokenizer?: string;
  /** What the command will do with the model, for the memory check (default: inference). */
  use?: ModelUse;
  /** How the weight matrices are stored on the GPU (default: the Gpu's weightDtype, from --dtype). */
  dtype?: WeightDtype;
}

export async function loadModel(gpu: Gpu, path: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const file = await modelFile(path);
  const header = await withSafetensors(file, async (f) => ({ metadata: f.metadata, shapes: [...f.tensors].map(([n, t]) => [n, t.shape] as const) }));
  const format = header.metadata.format;
  const isSeal = format === CHECKPOINT_FORMAT;
  const isHf = !isSeal && header.shapes.some(([n]) => ourName(n) === 'wte.weight');
  if (!isSeal && !isHf) {
    throw new UserError(
      `${file}: not a model file we can load: neither a seal-webgpu checkpoint (metadata format '${CHECKPOINT_FORMAT}'${format ? `; this file's is '${format}'` : ''}) ` +
        `nor a Hugging Face GPT-2 model.safetensors (no wte.weight; tensors: ${header.shapes.slice(0, 4).map(([n]) => n).join(', ') || 'none'}${header.shapes.length > 4 ? ', …' : ''})`,
    );
  }
  const dtype = opts.dtype ?? gpu.weightDtype;
  const fits = (config: GPT2Config) => checkFits(gpu, file, config, opts.use ?? INFERENCE, dtype);
  if (isSeal) {
    fits(sealConfig(header.metadata.config, file));
    const { model, tokenizer } = await loadCheckpoint(gpu, file, { dtype });
    return { model, tokenizer: fitting(model, tokenizerFromName(opts.tokenizer ?? tokenizer), file), format: 'seal' };
  }
  const { config, tensors } = await loadGpt2Weights(file, opts);
  fits(config);
  const tok = opts.tokenizer ? tokenizerFromName(opts.tokenizer) : tokenizerForVocab(config.vocabSize, file);
  const model = GPT2.fromArrays(gpu, config, new Map([...tensors].map(([n, t]) => [n, t.data])), dtype);
  return { model, tokenizer: fitting(model, tok, file), format: 'huggingface' };
}

async function modelFile(path: string): Promise<string> {
  const dir = await isDirectory(path).catch((e: Error & { code?: string }) => {
    throw new UserError(`${path}: cannot open the model file (${e.code ?? e.message})`);
  });
  return dir ? joinPath(path, 'model.safetensors') : path;
}

function sealConfig(text: string | undefined, file: string): GPT2Config {
  try {
    return validateConfig(JSON.parse(text ?? '') as GPT2Config);
  } catch (e) {
    throw new UserError(`${file}: metadata 'config': ${(e as Error).message}`);
  }
}

/** GPT-2's BPE for its 50257 ids (or a vocabulary padded past them), bytes for 257. */
function tokenizerForVocab(vocabSize: number, file: string): Tokenizer {
  if (vocabSize >= gpt2Tokenizer.vocabSize) return gpt2Tokenizer;
  if (vocabSize === byteTokenizer.vocabSize) return byteTokenizer;
  throw new UserError(`${file}: a vocabulary of ${vocabSize} matches no tokenizer we know (gpt2: ${gpt2Tokenizer.vocabSize}, byte: ${byteTokenizer.vocabSize}); pass the tokenizer option`);
}

function fitting(model: GPT2, tok: Tokenizer, file: string): Tokenizer {
  if (tok.vocabSize > model.config.vocabSize) {
    model.release();
    throw new UserError(`${file}: the ${tok.name} tokenizer has ${tok.vocabSize} ids but the model's vocabulary is ${model.config.vocabSize}`);
  }
  return tok;
}
