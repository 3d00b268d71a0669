// Loading any model we know, with its tokenizer: our checkpoints (safetensors whose metadata format
// is 'seal-webgpu/gpt2'), Hugging Face GPT-2 model.safetensors files, and Hugging Face folders whose
// config.json names a Llama-family model_type (hf-llama.ts; the tokenizer from its tokenizer.json).
// A directory means the model.safetensors inside it. A model must fit the adapter's memory
// (model/memory.ts): that is checked before anything is put on the GPU, with a message naming
// needed and available bytes.
import type { Gpu } from '../gpu/gpu.ts';
import { loadGpt2Weights, ourName, type LoadGpt2Options } from './hf-import.ts';
import { exists, isDirectory, joinPath, readText } from '../io/files.ts';
import { withSafetensors } from '../io/safetensors.ts';
import { byteTokenizer, gpt2Tokenizer, tokenizerFromName, type Tokenizer } from '../io/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { GPT2, type WeightDtype } from './gpt2.ts';
import { loadLlamaFolder } from './hf-llama.ts';
import { LLAMA_TYPES } from './llama-config.ts';
import type { LanguageModel } from './lm.ts';
import { checkFits, INFERENCE, type ModelUse } from './memory.ts';
import { validateConfig, type GPT2Config } from './config.ts';
import { loadHfTokenizer } from '../io/hf-tokenizer.ts';

/** The model_type values a Hugging Face config.json may name. */
export const SUPPORTED_MODEL_TYPES = ['gpt2', ...LLAMA_TYPES] as const;

/** The metadata format saveCheckpoint writes. */
const CHECKPOINT_FORMAT = 'seal-webgpu/gpt2';

export interface LoadedModel {
  model: LanguageModel;
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
  // A Llama-family folder is the unit (shards, tokenizer). Only a folder is looked into: in a page
  // every probe is a request.
  const hf = (await isDirectory(path).catch(() => false)) ? await folderConfig(path) : null;
  if (hf && hf.model_type !== 'gpt2') {
    if (!(LLAMA_TYPES as readonly unknown[]).includes(hf.model_type)) {
      throw new UserError(`${joinPath(path, 'config.json')}: model_type '${String(hf.model_type)}' is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
    }
    // The tokenizer first: a bad tokenizer.json fails before any weight is read.
    const tok = opts.tokenizer ? tokenizerFromName(opts.tokenizer) : await loadHfTokenizer(path);
    if (typeof hf.vocab_size === 'number' && tok.vocabSize > hf.vocab_size) throw tooManyIds(tok, hf.vocab_size, path);
    const model = await loadLlamaFolder(gpu, path, hf, opts.use ?? INFERENCE, opts.dtype ?? gpu.weightDtype);
    return { model, tokenizer: fitting(model, tok, path), format: 'huggingface' };
  }
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

/** The safetensors file a model path names (a directory: its model.safetensors). */
export async function modelFile(path: string): Promise<string> {
  const dir = await isDirectory(path).catch((e: Error & { code?: string }) => {
    throw new UserError(`${path}: cannot open the model file (${e.code ?? e.message})`);
  });
  return dir ? joinPath(path, 'model.safetensors') : path;
}

/** A folder's config.json when it names a model_type (GPT-2 files may come without one). */
async function folderConfig(dir: string): Promise<Record<string, unknown> | null> {
  const file = joinPath(dir, 'config.json');
  if (!(await exists(file))) return null;
  const text = await readText(file);
  let hf: Record<string, unknown>;
  try {
    hf = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  return hf.model_type === undefined ? null : hf;
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

function fitting(model: LanguageModel, tok: Tokenizer, file: string): Tokenizer {
  if (tok.vocabSize > model.config.vocabSize) {
    model.release();
    throw tooManyIds(tok, model.config.vocabSize, file);
  }
  return tok;
}

const tooManyIds = (tok: Tokenizer, vocabSize: number, file: string) =>
  new UserError(`${file}: the ${tok.name} tokenizer has ${tok.vocabSize} ids but the model's vocabulary is ${vocabSize} (its embedding's rows): the tokenizer does not belong to this model`);

/** The model as GPT-2, for what runs on GPT-2 alone (the text variant, `seal selfedit`); another family is a named error. */
export function gpt2Only(model: LanguageModel, what: string): GPT2 {
  if (model instanceof GPT2) return model;
  model.release();
  throw new UserError(`${what} runs on GPT-2 models only; this one is ${model.kind}`);
}
