// `seal-webgpu/seal`: SEAL variant A — train an edit generator into a run directory, adapt a model
// to a new passage with it (one feature pass and one generator pass), write the edit, and evaluate
// adaptation methods on a split of SQuAD-format passages.
export { DEFAULT_SEAL, resolveConfig, ConfigError, type SealConfig } from '../seal/config.ts';
export { RUN_VERSION, runFiles, trainGenerator, type TrainedRun, type TrainHooks } from '../seal/run.ts';
export type { IterationMetrics, SealTrainer } from '../seal/trainer.ts';
export { GENERATOR_VERSION } from '../seal/generator.ts';
export { Adapter, EDIT_VERSION, editDeltas, readEdit, writeEdit, type Adaptation } from '../seal/adapt.ts';
export {
  adapterMethod,
  baseMethod,
  evaluate,
  formatTable,
  inContextMethod,
  randomEditMethod,
  type EvalOptions,
  type EvalResult,
  type Method,
  type MethodSummary,
} from '../tasks/eval.ts';
export { finetuneMethod } from '../tasks/finetune.ts';
export { ForgettingProbe, loadGeneralText } from '../tasks/forgetting.ts';
export { answerNll, exactMatch, greedyAnswers, type QAItem } from '../tasks/qa.ts';
export { loadSquad, parseSquad, type Passage } from '../tasks/squad.ts';
export type { TensorToWrite } from '../io/safetensors.ts';
