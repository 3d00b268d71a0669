// A random-initialised Hugging Face checkpoint, for trying real sizes without a download: a named
// shape (src/model/shapes.ts: GPT-2 as model.safetensors + config.json, Llama-family as a folder
// with a byte-level BPE tokenizer.json), or a Llama-family folder of any other shape (sharded if asked):
//   node --import tsx scripts/random-checkpoint.ts --shape gpt2-small --out runs/gpt2-small
//   node --import tsx scripts/random-checkpoint.ts --shape smollm2-135m --out runs/smollm2
//   node --import tsx scripts/random-checkpoint.ts --out runs/tiny --vocab 512 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 --shards 2
// Loads with `seal eval --model <out>` like a downloaded model.
import { Command, Option } from 'commander';
import { SMOLLM2_135M, writeRandomLlama } from '../src/model/hf-write.ts';
import { LLAMA_TYPES, type LlamaConfig } from '../src/model/llama-config.ts';
import { MODEL_SHAPES, writeRandomCheckpoint } from '../src/model/shapes.ts';
const int = (v: string) => Number.parseInt(v, 10);

const o = new Command()
  .requiredOption('--out <dir>', 'folder to write')
  .addOption(new Option('--shape <name>', 'a named shape (alone, it takes only --seed; with size options, a Llama-family shape is the base they change)').choices(Object.keys(MODEL_SHAPES)))
  .addOption(new Option('--model-type <type>', 'config.json model_type').choices(LLAMA_TYPES))
  .option('--vocab <n>', 'vocab_size', int)
  .option('--hidden <n>', 'hidden_size', int)
  .option('--layers <n>', 'num_hidden_layers', int)
  .option('--heads <n>', 'num_attention_heads', int)
  .option('--kv-heads <n>', 'num_key_value_heads', int)
  .option('--intermediate <n>', 'intermediate_size', int)
  .option('--ctx <n>', 'max_position_embeddings', int)
  .option('--rope-theta <x>', 'rope_theta', Number)
  .option('--untied', 'a separate lm_head.weight')
  .option('--shards <n>', 'shard files (with model.safetensors.index.json)', int, 1)
  .option('--seed <n>', 'random seed', int, 1)
  .parse()
  .opts();

const t0 = performance.now();
const took = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const named = o.shape ? MODEL_SHAPES[o.shape]! : undefined;
const sized = ['modelType', 'vocab', 'hidden', 'layers', 'heads', 'kvHeads', 'intermediate', 'ctx', 'ropeTheta', 'untied', 'shards'].some((k) => o[k] !== undefined && !(k === 'shards' && o[k] === 1));
if (named && (named.family === 'gpt2' || !sized)) {
  if (sized && named.family === 'gpt2') throw new Error(`--shape ${o.shape}: a GPT-2 shape takes only --seed`);
  await writeRandomCheckpoint(o.out, named, o.seed);
  console.log(`wrote a random ${named.family} checkpoint (${o.shape}, seed ${o.seed}) to ${o.out} in ${took()}`);
} else {
  const base = named?.family === 'llama' ? named.config : SMOLLM2_135M;
  const heads = o.heads ?? base.nHead;
  const hidden = o.hidden ?? base.nEmbd;
  const config: LlamaConfig = {
    ...base,
    modelType: o.modelType ?? base.modelType,
    vocabSize: o.vocab ?? base.vocabSize,
    nEmbd: hidden,
    nLayer: o.layers ?? base.nLayer,
    nHead: heads,
    nKvHead: o.kvHeads ?? (o.heads ? heads : base.nKvHead),
    headDim: o.hidden || o.heads ? hidden / heads : base.headDim,
    intermediate: o.intermediate ?? base.intermediate,
    nCtx: o.ctx ?? base.nCtx,
    ropeTheta: o.ropeTheta ?? base.ropeTheta,
    tied: o.untied ? false : base.tied,
    qkvBias: (o.modelType ?? base.modelType) === 'qwen2',
  };
  await writeRandomLlama(o.out, config, { seed: o.seed, shards: o.shards });
  console.log(`wrote a random ${config.modelType} checkpoint (${config.nLayer} layers, hidden ${config.nEmbd}, vocab ${config.vocabSize}) to ${o.out} in ${took()}`);
}
