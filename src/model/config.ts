// GPT-2-family configuration and the parameter set it implies. Tensor names follow Hugging Face's
// GPT-2 checkpoints (without the `transformer.` prefix), so masks and imports speak one language.
// Linear weights are stored (in, out), as HF's Conv1D does: y = x·W is a plain matmul.

export interface GPT2Config {
  vocabSize: number;
  /** Context length (positions). */
  nCtx: number;
  nLayer: number;
  nHead: number;
  /** Width C; must be divisible by nHead. */
  nEmbd: number;
}

export const GPT2_SMALL: GPT2Config = { vocabSize: 50257, nCtx: 1024, nLayer: 12, nHead: 12, nEmbd: 768 };

export function validateConfig(c: GPT2Config): GPT2Config {
  for (const k of ['vocabSize', 'nCtx', 'nLayer', 'nHead', 'nEmbd'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new RangeError(`config.${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.nEmbd % c.nHead !== 0) throw new RangeError(`config.nEmbd (${c.nEmbd}) must be divisible by nHead (${c.nHead})`);
  return c;
}

export interface ParamSpec {
  name: string;
  shape: number[];
  /** How a fresh model initialises it (GPT-2's scheme). */
  init: 'normal' | 'residual' | 'zeros' | 'ones';
}

/** Every parameter in a fixed order: the order of the flat parameter and gradient buffers. */
export function paramSpecs(c: GPT2Config): ParamSpec[] {
  const C = c.nEmbd;
  const specs: ParamSpec[] = [
    { name: 'wte.weight', shape: [c.vocabSize, C], init: 'normal' },
    { name: 'wpe.weight', shape: [c.nCtx, C], init: 'normal' },
  ];
  for (let l = 0; l < c.nLayer; l++) {
    const h = `h.${l}`;
    specs.push(
      { name: `${h}.ln_1.weight`, shape: [C], init: 'ones' },
      { name: `${h}.ln_1.bias`, shape: [C], init: 'zeros' },
      { name: `${h}.attn.c_attn.weight`, shape: [C, 3 * C], init: 'normal' },
      { name: `${h}.attn.c_attn.bias`, shape: [3 * C], init: 'zeros' },
      { name: `${h}.attn.c_proj.weight`, shape: [C, C], init: 'residual' },
      { name: `${h}.attn.c_proj.bias`, shape: [C], init: 'zeros' },
      { name: `${h}.ln_2.weight`, shape: [C], init: 'ones' },
      { name: `${h}.ln_2.bias`, shape: [C], init: 'zeros' },
      { name: `${h}.mlp.c_fc.weight`, shape: [C, 4 * C], init: 'normal' },
      { name: `${h}.mlp.c_fc.bias`, shape: [4 * C], init: 'zeros' },
      { name: `${h}.mlp.c_proj.weight`, shape: [4 * C, C], init: 'residual' },
      { name: `${h}.mlp.c_proj.bias`, shape: [C], init: 'zeros' },
    );
  }
  specs.push({ name: 'ln_f.weight', shape: [C], init: 'ones' }, { name: 'ln_f.bias', shape: [C], init: 'zeros' });
  return specs;
}

export function paramCount(c: GPT2Config): number {
  return paramSpecs(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}
