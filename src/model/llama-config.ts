// Llama-family configuration (Hugging Face's model_type 'llama' and 'qwen2'; SmolLM2 is 'llama')
// read from config.json, and the parameter set it implies, under Hugging Face's tensor names.
// Linear weights are nn.Linear's (out, in); ops/linear.ts applies them as y = x·Wᵀ + b.
import { UserError } from '../util/errors.ts';
import type { ModelDims } from './lm.ts';
import type { ParamSpec } from './config.ts';

export const LLAMA_TYPES = ['llama', 'qwen2'] as const;
export type LlamaType = (typeof LLAMA_TYPES)[number];

/** Rope scaling kinds we apply; others are refused by name. */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number };

export interface LlamaConfig extends ModelDims {
  modelType: LlamaType;
  nHead: number;
  nKvHead: number;
  headDim: number;
  /** Width of the SwiGLU MLP. */
  intermediate: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  rmsEps: number;
  /** lm_head shares embed_tokens (no lm_head.weight). */
  tied: boolean;
  /** q/k/v projections carry biases (Qwen2). */
  qkvBias: boolean;
}

const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;

export function validateLlama(c: LlamaConfig): LlamaConfig {
  for (const k of ['vocabSize', 'nCtx', 'nLayer', 'nEmbd', 'nHead', 'nKvHead', 'headDim', 'intermediate'] as const) {
    if (!posInt(c[k])) throw new UserError(`llama config: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.nHead % c.nKvHead !== 0) throw new UserError(`llama config: num_key_value_heads (${c.nKvHead}) must divide num_attention_heads (${c.nHead})`);
  if (c.headDim % 2 !== 0) throw new UserError(`llama config: head_dim (${c.headDim}) must be even for rotary embeddings`);
  if (!(c.ropeTheta > 0)) throw new UserError(`llama config: rope_theta must be positive, got ${c.ropeTheta}`);
  if (!(c.rmsEps > 0)) throw new UserError(`llama config: rms_norm_eps must be positive, got ${c.rmsEps}`);
  return c;
}

/** A Llama config from Hugging Face's config.json fields; `source` names the file in errors. */
export function llamaFromHf(hf: Record<string, unknown>, source: string): LlamaConfig {
  const type = hf.model_type as LlamaType;
  const num = (key: string, fallback?: number): number => {
    const v = hf[key] ?? fallback;
    if (typeof v !== 'number') throw new UserError(`${source}: '${key}' is missing or not a number`);
    return v;
  };
  if (hf.hidden_act !== undefined && hf.hidden_act !== 'silu') throw new UserError(`${source}: hidden_act '${String(hf.hidden_act)}' is not supported (the Llama MLP here is SwiGLU: silu)`);
  const nEmbd = num('hidden_size');
  const nHead = num('num_attention_heads');
  try {
    return validateLlama({
      modelType: type,
      vocabSize: num('vocab_size'),
      nCtx: num('max_position_embeddings'),
      nLayer: num('num_hidden_layers'),
      nEmbd,
      nHead,
      nKvHead: num('num_key_value_heads', nHead),
      headDim: num('head_dim', nEmbd / nHead),
      intermediate: num('intermediate_size'),
      ropeTheta: num('rope_theta', 10000),
      ropeScaling: ropeScaling(hf.rope_scaling, source),
      rmsEps: num('rms_norm_eps', 1e-6),
      // transformers' default for both types: an untied head.
      tied: hf.tie_word_embeddings === true,
      // Qwen2 always has them; Llama only with attention_bias.
      qkvBias: type === 'qwen2' || hf.attention_bias === true,
    });
  } catch (e) {
    throw e instanceof UserError ? new UserError(`${source}: ${e.message}`) : e;
  }
}

function ropeScaling(s: unknown, source: string): RopeScaling | null {
  if (s === null || s === undefined) return null;
  const r = s as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  const factor = Number(r.factor);
  if (type === 'default') return null;
  if ((type === 'linear' || type === 'llama3') && !(factor > 0)) throw new UserError(`${source}: rope_scaling.factor must be positive, got ${r.factor}`);
  if (type === 'linear') return { type, factor };
  if (type === 'llama3') {
    return {
      type,
      factor,
      lowFreqFactor: Number(r.low_freq_factor ?? 1),
      highFreqFactor: Number(r.high_freq_factor ?? 4),
      originalContext: Number(r.original_max_position_embeddings ?? 8192),
    };
  }
  throw new UserError(`${source}: rope_scaling type '${String(type)}' is not supported (supported: default, linear, llama3)`);
}

/** Rotary inverse frequencies (HD/2), with the config's scaling, in f64 (as transformers computes them). */
export function ropeInvFreq(c: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  const half = c.headDim / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => 1 / c.ropeTheta ** ((2 * i) / c.headDim));
  const s = c.ropeScaling;
  if (s?.type === 'linear') return inv.map((f) => f / s.factor);
  if (s?.type === 'llama3') {
    const lowWavelen = s.originalContext / s.lowFreqFactor;
    const highWavelen = s.originalContext / s.highFreqFactor;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f;
      if (wavelen > lowWavelen) return f / s.factor;
      const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return (1 - smooth) * (f / s.factor) + smooth * f;
    });
  }
  return inv;
}

/** Every parameter in a fixed order, with its shape and a fresh model's initialisation. */
export function llamaParamSpecs(c: LlamaConfig): ParamSpec[] {
  const { nEmbd: C, headDim: HD, intermediate: I } = c;
  const Q = c.nHead * HD;
  const KV = c.nKvHead * HD;
  const specs: ParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, C], init: 'normal' }];
  for (let l = 0; l < c.nLayer; l++) {
    const p = `model.layers.${l}`;
    specs.push({ name: `${p}.input_layernorm.weight`, shape: [C], init: 'ones' });
    for (const [proj, out] of [['q_proj', Q], ['k_proj', KV], ['v_proj', KV]] as const) {
      specs.push({ name: `${p}.self_attn.${proj}.weight`, shape: [out, C], init: 'normal' });
      if (c.qkvBias) specs.push({ name: `${p}.self_attn.${proj}.bias`, shape: [out], init: 'zeros' });
    }
    specs.push(
      { name: `${p}.self_attn.o_proj.weight`, shape: [C, Q], init: 'residual' },
      { name: `${p}.post_attention_layernorm.weight`, shape: [C], init: 'ones' },
      { name: `${p}.mlp.gate_proj.weight`, shape: [I, C], init: 'normal' },
      { name: `${p}.mlp.up_proj.weight`, shape: [I, C], init: 'normal' },
      { name: `${p}.mlp.down_proj.weight`, shape: [C, I], init: 'residual' },
    );
  }
  specs.push({ name: 'model.norm.weight', shape: [C], init: 'ones' });
  if (!c.tied) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, C], init: 'normal' });
  return specs;
}

/** The config.json Hugging Face's transformers writes for this config (for checkpoints we write). */
export function llamaToHf(c: LlamaConfig): Record<string, unknown> {
  const s = c.ropeScaling;
  return {
    architectures: [c.modelType === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.nCtx,
    num_hidden_layers: c.nLayer,
    hidden_size: c.nEmbd,
    num_attention_heads: c.nHead,
    num_key_value_heads: c.nKvHead,
    head_dim: c.headDim,
    intermediate_size: c.intermediate,
    rope_theta: c.ropeTheta,
    rope_scaling:
      s === null
        ? null
        : s.type === 'linear'
          ? { rope_type: 'linear', factor: s.factor }
          : { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalContext },
    rms_norm_eps: c.rmsEps,
    tie_word_embeddings: c.tied,
    attention_bias: c.qkvBias,
    hidden_act: 'silu',
    torch_dtype: 'float32',
  };
}
