// Hugging Face Llama-family folders: config.json, model.safetensors or the shards a
// model.safetensors.index.json lists, and tokenizer.json. Everything is checked from the headers
// before a byte of weights is read (shards present, every tensor there with the shape config.json
// implies), then the memory the model needs against the adapter's (model/memory.ts); tensors then
// load one by one (F32, F16 or BF16 in the file; matrices stored f32 or f16 on the GPU, tensors over
// one storage binding split by the ops) straight to the GPU, and a failure releases whatever was
// uploaded: nothing half-loaded.
import type { Gpu } from '../gpu/gpu.ts';
import { fmtShape } from '../gpu/tensor.ts';
import { exists, joinPath as join, readText } from '../io/files.ts';
import { closestNames, sameShape, withSafetensors } from '../io/safetensors.ts';
import { UserError } from '../util/errors.ts';
import { llamaFromHf, llamaParamSpecs, type LlamaConfig } from './llama-config.ts';
import { Llama } from './llama.ts';
import { uploadWeight, type WeightDtype, type WeightMap } from './lm.ts';
import { checkFits, type ModelUse } from './memory.ts';

export const INDEX_FILE = 'model.safetensors.index.json';

/** Tensors in a checkpoint that are not parameters: rotary caches some exports carry. */
const NOT_PARAMETERS = /\.rotary_emb\.inv_freq$/;

/** The checkpoint's files and which file holds each tensor, from the index or the single file. */
async function checkpointFiles(dir: string): Promise<{ files: string[]; fileOf: Map<string, string> | null }> {
  const indexPath = join(dir, INDEX_FILE);
  if (!(await exists(indexPath))) {
    const single = join(dir, 'model.safetensors');
    if (!(await exists(single))) throw new UserError(`${dir}: no model.safetensors and no ${INDEX_FILE}`);
    return { files: [single], fileOf: null };
  }
  let map: Record<string, string>;
  try {
    map = (JSON.parse(await readText(indexPath)) as { weight_map: Record<string, string> }).weight_map;
  } catch (e) {
    throw new UserError(`${indexPath}: not a safetensors index (${(e as Error).message})`);
  }
  if (!map || typeof map !== 'object') throw new UserError(`${indexPath}: no weight_map`);
  const fileOf = new Map(Object.entries(map).map(([name, file]) => [name, join(dir, file)]));
  const files = [...new Set(fileOf.values())];
  const missing: string[] = [];
  for (const f of files) if (!(await exists(f))) missing.push(f);
  if (missing.length > 0) throw new UserError(`${indexPath}: missing shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (listed in the index; download it again)`);
  return { files, fileOf };
}

export interface LlamaFolder {
  config: LlamaConfig;
  /** Each parameter's file and the name it has there. */
  where: Map<string, string>;
}

/** Checks a folder's headers against its config.json; reads no weights. */
export async function inspectLlamaFolder(dir: string, hf: Record<string, unknown>): Promise<LlamaFolder> {
  const config = llamaFromHf(hf, join(dir, 'config.json'));
  const { files, fileOf } = await checkpointFiles(dir);
  const shapes = new Map<string, { file: string; shape: readonly number[] }>();
  for (const file of files) {
    await withSafetensors(file, async (f) => {
      for (const [name, info] of f.tensors) {
        if (fileOf && fileOf.get(name) !== file) continue;
        shapes.set(name, { file, shape: info.shape });
      }
    });
  }
  if (fileOf) {
    const absent = [...fileOf].filter(([n]) => !shapes.has(n));
    if (absent.length > 0) throw new UserError(`${dir}: the index lists '${absent[0]![0]}' in ${absent[0]![1]}, which does not hold it`);
  }
  const specs = llamaParamSpecs(config);
  const expected = new Set(specs.map((s) => s.name));
  // A tied head may still be saved; it is the embedding and is not loaded.
  const unexpected = [...shapes.keys()].filter((n) => !expected.has(n) && !NOT_PARAMETERS.test(n) && !(config.tied && n === 'lm_head.weight'));
  if (unexpected.length > 0) throw new UserError(`${dir}: unexpected tensors for this ${config.modelType} config: ${unexpected.slice(0, 4).join(', ')}${unexpected.length > 4 ? ', …' : ''}`);
  const where = new Map<string, string>();
  for (const s of specs) {
    const found = shapes.get(s.name);
    if (!found) throw new UserError(`${dir}: missing tensor '${s.name}'; closest in the checkpoint: ${closestNames(s.name, [...shapes.keys()]).join(', ')}`);
    if (!sameShape(found.shape, s.shape)) {
      throw new UserError(`${found.file}: tensor '${s.name}' is ${fmtShape(found.shape)}, but config.json implies ${fmtShape(s.shape)} (${describe(config)})`);
    }
    where.set(s.name, found.file);
  }
  return { config, where };
}

/** Loads a checked folder's weights onto the GPU, once they fit it for `use`; on any failure nothing stays allocated. */
export async function loadLlamaFolder(gpu: Gpu, dir: string, hf: Record<string, unknown>, use: ModelUse, dtype: WeightDtype): Promise<Llama> {
  const { config, where } = await inspectLlamaFolder(dir, hf);
  checkFits(gpu, dir, config, use, dtype);
  const params: WeightMap = new Map();
  const specs = llamaParamSpecs(config);
  try {
    for (const file of new Set(where.values())) {
      await withSafetensors(file, async (f) => {
        for (const s of specs) {
          if (where.get(s.name) !== file) continue;
          params.set(s.name, uploadWeight(gpu, s.name, await f.getFinite(s.name, s.shape), s.shape, dtype));
        }
      });
    }
    // Order the map as the specs are (optimizer and mask order), whatever the shards' order.
    return new Llama(gpu, config, new Map(specs.map((s) => [s.name, params.get(s.name)!])));
  } catch (e) {
    for (const t of params.values()) t.release();
    throw e;
  }
}

function describe(c: LlamaConfig): string {
  return `hidden_size ${c.nEmbd}, ${c.nHead} heads, ${c.nKvHead} kv heads, head_dim ${c.headDim}, intermediate_size ${c.intermediate}, vocab_size ${c.vocabSize}`;
}
