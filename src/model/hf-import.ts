// Hugging Face GPT-2 checkpoints (`model.safetensors`) onto our parameter set.
//
// Names: ours are HF's GPT-2 names without the `transformer.` prefix (src/model/config.ts), e.g.
// `h.3.mlp.c_proj.weight`; files saved from GPT2LMHeadModel carry the prefix, which is stripped.
// The causal-mask buffers `h.{i}.attn.bias` / `h.{i}.attn.masked_bias` are not parameters, and
// `lm_head.weight` is tied to `wte.weight` in GPT-2, so all three are skipped.
//
// Layout: HF's GPT-2 uses Conv1D, whose weight is stored (in, out) row-major and applied as
// y = x·W + b with no transpose (unlike nn.Linear's (out, in) and y = x·Wᵀ). Our model keeps
// exactly that layout: every linear weight is (in, out), so a layer is the plain matmul
// C = A·B with A = activations (rows × in) and B = W (in × out). Import therefore copies bytes
// and transposes nothing. c_attn's 3C output columns are [q | k | v], each C wide, and within
// each the heads are contiguous blocks of C / nHead columns. Embeddings are (rows, C).
import { fmtShape } from '../gpu/tensor.ts';
import { joinPath, parentPath, readText } from '../io/files.ts';
import { closestNames, SafetensorsError, withSafetensors, type SafetensorsFile } from '../io/safetensors.ts';
import { UserError } from '../util/errors.ts';
import { paramSpecs, validateConfig, type GPT2Config } from './config.ts';

export interface ImportedTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface Gpt2Weights {
  readonly config: GPT2Config;
  /** Our names, in the model's parameter order. */
  readonly tensors: Map<string, ImportedTensor>;
}

export interface LoadGpt2Options {
  /** Head count; shapes cannot tell it. Otherwise taken from `__metadata__.n_head` or config.json. */
  nHead?: number;
  /** HF config.json; by default the one beside the checkpoint, if there is one. */
  configPath?: string;
}

/** The tensors a GPT-2 of this config has, with shapes: what an import must find. */
export function GPT2_TENSOR_NAMES(config: GPT2Config): { name: string; shape: number[] }[] {
  return paramSpecs(validateConfig(config)).map(({ name, shape }) => ({ name, shape }));
}

const HF_PREFIX = 'transformer.';
const NOT_PARAMETERS = /^(h\.\d+\.attn\.(bias|masked_bias)|lm_head\.weight)$/;

/** Our name for a tensor name in an HF checkpoint, or null for buffers and the tied LM head. */
export function ourName(hfName: string): string | null {
  const name = hfName.startsWith(HF_PREFIX) ? hfName.slice(HF_PREFIX.length) : hfName;
  return NOT_PARAMETERS.test(name) ? null : name;
}

/** Reads an HF GPT-2 checkpoint (F32, F16 or BF16) into f32 tensors under our names, with its config. */
export async function loadGpt2Weights(path: string, opts: LoadGpt2Options = {}): Promise<Gpt2Weights> {
  return withSafetensors(path, async (file) => {
    const fail = (msg: string) => new SafetensorsError(`${path}: ${msg}`);
    const fileNameOf = mapNames(file, fail);
    const hfConfig = await readHfConfig(opts.configPath ?? joinPath(parentPath(path), 'config.json'), opts.configPath !== undefined);
    const config = inferConfig(file, fileNameOf, opts.nHead, hfConfig, fail);

    const expected = GPT2_TENSOR_NAMES(config);
    const expectedNames = new Set(expected.map((t) => t.name));
    const unexpected = [...fileNameOf.keys()].filter((n) => !expectedNames.has(n));
    if (unexpected.length > 0) throw fail(`unexpected tensors for a ${describe(config)}: ${unexpected.map((n) => fileNameOf.get(n)).join(', ')}`);

    const tensors = new Map<string, ImportedTensor>();
    for (const { name, shape } of expected) {
      const inFile = fileNameOf.get(name);
      if (inFile === undefined) {
        throw fail(`missing tensor '${name}' for a ${describe(config)}; closest in the file: ${closestNames(name, [...fileNameOf.keys()]).join(', ')}`);
      }
      tensors.set(name, { shape, data: await file.getFinite(inFile, shape) });
    }
    return { config, tensors };
  });
}

/** Our name → the file's name, for every parameter tensor in the file. */
function mapNames(file: SafetensorsFile, fail: (msg: string) => Error): Map<string, string> {
  const fileNameOf = new Map<string, string>();
  for (const n of file.names) {
    const ours = ourName(n);
    if (ours === null) continue;
    const other = fileNameOf.get(ours);
    if (other !== undefined) throw fail(`tensors '${other}' and '${n}' both map to '${ours}'`);
    fileNameOf.set(ours, n);
  }
  return fileNameOf;
}

type HfConfig = Record<string, unknown> & { source: string };

async function readHfConfig(path: string, required: boolean): Promise<HfConfig | null> {
  let text: string;
  try {
    text = await readText(path);
  } catch (e) {
    if (!required && (e as { code?: string }).code === 'ENOENT') return null;
    throw e;
  }
  try {
    return { ...JSON.parse(text), source: path };
  } catch (e) {
    throw new UserError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
}

/** Sizes from tensor shapes; the head count from the caller, the file's metadata or config.json, which must agree. */
function inferConfig(file: SafetensorsFile, fileNameOf: Map<string, string>, nHead: number | undefined, hf: HfConfig | null, fail: (msg: string) => Error): GPT2Config {
  const shapeOf = (name: string) => {
    const inFile = fileNameOf.get(name);
    const info = inFile === undefined ? undefined : file.tensors.get(inFile);
    if (!info || info.shape.length !== 2) throw fail(`cannot infer the config: '${name}' is ${info ? `${fmtShape(info.shape)}, not 2-D` : 'missing'}`);
    return info.shape as [number, number];
  };
  const [vocabSize, nEmbd] = shapeOf('wte.weight');
  const [nCtx, wpeWidth] = shapeOf('wpe.weight');
  if (wpeWidth !== nEmbd) throw fail(`wpe.weight is ${fmtShape([nCtx, wpeWidth])} but wte.weight is ${fmtShape([vocabSize, nEmbd])}: widths differ`);
  const layers = [...fileNameOf.keys()].map((n) => /^h\.(\d+)\./.exec(n)?.[1]).filter((i) => i !== undefined);
  const nLayer = layers.length === 0 ? 0 : Math.max(...layers.map(Number)) + 1;

  const headSources: [string, unknown][] = [
    ['the nHead option', nHead],
    [`__metadata__.n_head`, file.metadata.n_head === undefined ? undefined : Number(file.metadata.n_head)],
    [`${hf?.source}: n_head`, hf?.n_head ?? hf?.num_attention_heads],
  ];
  const heads = headSources.filter(([, v]) => v !== undefined);
  if (heads.length === 0) throw fail('the head count cannot be inferred from shapes: pass nHead, set __metadata__.n_head, or put config.json beside the file');
  if (heads.some(([, v]) => v !== heads[0]![1])) throw fail(`head counts disagree: ${heads.map(([s, v]) => `${s} = ${v}`).join(', ')}`);

  const config = { vocabSize, nCtx, nLayer, nHead: heads[0]![1] as number, nEmbd };
  if (hf) checkAgainstHfConfig(config, hf);
  try {
    return validateConfig(config);
  } catch (e) {
    throw fail((e as Error).message);
  }
}

/** config.json must describe the same model as the shapes, and a tied LM head, which is all we import. */
function checkAgainstHfConfig(config: GPT2Config, hf: HfConfig): void {
  const fields: [string, keyof GPT2Config][] = [['vocab_size', 'vocabSize'], ['n_positions', 'nCtx'], ['n_layer', 'nLayer'], ['n_embd', 'nEmbd']];
  for (const [key, ours] of fields) {
    if (hf[key] !== undefined && hf[key] !== config[ours]) throw new UserError(`${hf.source}: ${key} = ${hf[key]}, but the checkpoint's shapes give ${config[ours]}`);
  }
  if (hf.tie_word_embeddings === false) throw new UserError(`${hf.source}: tie_word_embeddings is false; only GPT-2's tied LM head (lm_head = wte) is supported`);
}

function describe(c: GPT2Config): string {
  return `GPT-2 with ${c.nLayer} layers, C=${c.nEmbd}, vocab ${c.vocabSize}, context ${c.nCtx}`;
}
