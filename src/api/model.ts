// `seal-webgpu/model`: GPT-2 models on the GPU — load (our checkpoints and Hugging Face GPT-2
// files), forward (a Pass that owns its activations), backward (Pass.backward adds every
// parameter's gradient), train (an AdamW Optimizer step; pretraining from scratch; finetuning a
// tensor mask on a text), generate (KV cache), and save checkpoints.
export { GPT2, Pass, type ParamMap, type Tokens } from '../model/gpt2.ts';
export { GPT2_SMALL, paramCount, type GPT2Config } from '../model/config.ts';
export { gpt2Only, loadModel, type LoadedModel, type LoadModelOptions } from '../model/load.ts';
export { Llama } from '../model/llama.ts';
export type { Decoder, LanguageModel, ModelPass } from '../model/lm.ts';
export { CHECKPOINT_VERSION, loadCheckpoint, saveCheckpoint, type CheckpointMeta, type LoadedCheckpoint } from '../model/checkpoint.ts';
export { DEFAULT_OPTIMIZE, learningRate, Optimizer, type OptimizeConfig } from '../model/optimize.ts';
export { generate, generateTokens, type GenerateOptions, type Generation, type SamplingOptions } from '../model/generate.ts';
export { resolveMask, type Mask, type MaskSpec } from '../model/mask.ts';
export { byteTokenizer, gpt2Tokenizer, tokenizerFromName, type Tokenizer } from '../io/tokenizer.ts';
export { pretrain, type PretrainOptions } from '../tasks/pretrain.ts';
export { DEFAULT_FINETUNE, finetunePassage, type FinetuneOptions } from '../tasks/finetune.ts';
export { passageBatch } from '../tasks/corpus.ts';
export { bundled } from '../io/files.ts';
