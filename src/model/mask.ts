// Which parameters a self-edit may change: tensor-name globs (safetensors names, e.g.
// `h.1.mlp.c_proj.weight` or `h.*.mlp.c_fc.weight`) and optional row/column ranges.
import { closestNames } from '../io/safetensors.ts';
import { MaskError, maskBlock, type MaskBlock, type Range } from '../ops/edit.ts';

/** Every MLP weight matrix of a model of this kind (gpt2, llama, qwen2): the default mask. */
export function mlpMask(kind: string): string[] {
  return kind === 'gpt2' ? ['h.*.mlp.c_fc.weight', 'h.*.mlp.c_proj.weight'] : ['model.layers.*.mlp.gate_proj.weight', 'model.layers.*.mlp.up_proj.weight', 'model.layers.*.mlp.down_proj.weight'];
}

export interface MaskSpec {
  tensors: string[];
  rows?: Range;
  cols?: Range;
}

export interface MaskEntry {
  name: string;
  shape: readonly number[];
  block: MaskBlock;
  /** Where this tensor's part starts in the packed action. */
  offset: number;
  size: number;
}

export interface Mask {
  spec: MaskSpec;
  entries: MaskEntry[];
  /** |M|: the number of editable parameters. */
  paramDim: number;
}

/** `*` matches within one dotted segment, `**` across segments. */
function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('**')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^.]*'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/** Resolves a mask against a model's tensors (name → shape), in the model's tensor order. */
export function resolveMask(shapes: ReadonlyMap<string, readonly number[]>, spec: MaskSpec): Mask {
  if (!spec.tensors?.length) throw new MaskError('mask: no tensors given (e.g. --mask h.1.mlp.c_proj.weight)');
  const names = [...shapes.keys()];
  const chosen = new Set<string>();
  for (const pattern of spec.tensors) {
    const re = globToRegExp(pattern);
    const hits = names.filter((n) => re.test(n));
    if (hits.length === 0) {
      const near = closestNames(pattern, names);
      throw new MaskError(`mask: '${pattern}' matches no tensor of the model${near.length ? `; did you mean ${near.join(', ')}?` : ''}`);
    }
    for (const h of hits) chosen.add(h);
  }
  let offset = 0;
  const entries: MaskEntry[] = [];
  for (const name of names.filter((n) => chosen.has(n))) {
    const shape = shapes.get(name)!;
    const block = maskBlock(shape, spec.rows, spec.cols);
    const size = block.run * block.runs;
    entries.push({ name, shape, block, offset, size });
    offset += size;
  }
  if (offset === 0) throw new MaskError(`mask: the ranges select no parameter of ${[...chosen].join(', ')}`);
  return { spec, entries, paramDim: offset };
}

/** Parses `--mask-rows 0:16` style ranges. */
export function parseRange(s: string): Range {
  const m = /^(\d+):(\d+)$/.exec(s.trim());
  if (!m) throw new MaskError(`range '${s}' must look like START:END (END exclusive)`);
  return [Number(m[1]), Number(m[2])];
}
