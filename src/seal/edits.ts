// How an action vector decodes into weight edits on the masked tensors, and applying a batch of
// them to scratch copies. The base tensors are only ever read.
import type { Gpu } from '../gpu/gpu.ts';
import type { F32 } from '../gpu/tensor.ts';
import { applyEdits, type Edit } from '../ops/edit.ts';
import { add } from '../ops/elementwise.ts';
import { sumSquares } from '../ops/reduce.ts';
import type { GPT2 } from '../model/gpt2.ts';
import type { SealConfig } from './config.ts';
import { resolveMask, type Mask } from './mask.ts';

export type EditKind = 'dense' | 'lowrank';

export interface EditEntry {
  name: string;
  shape: readonly number[];
  /** Where this tensor's part of one action row starts. */
  offset: number;
  edit(actions: F32, row: number, alpha: number): Edit;
}

export interface EditLayout {
  kind: EditKind;
  rank: number;
  /** Length of one action row. */
  actionDim: number;
  entries: EditEntry[];
}

/**
 * dense: the action is the masked delta itself (actionDim = |M|); lowrank: per masked matrix
 * W (m×n) the action holds U (m×r) then V (n×r) and Δ = U·Vᵀ (actionDim = Σ r(m+n)).
 */
export function editLayout(mask: Mask, kind: EditKind, rank = 0): EditLayout {
  if (kind === 'dense') {
    const D = mask.paramDim;
    return {
      kind,
      rank: 0,
      actionDim: D,
      entries: mask.entries.map((e) => ({
        name: e.name,
        shape: e.shape,
        offset: e.offset,
        edit: (actions, row, alpha) => ({ kind: 'dense', mask: [e.block], delta: actions, offset: row * D + e.offset, alpha }),
      })),
    };
  }
  if (!Number.isInteger(rank) || rank < 1) throw new RangeError(`low-rank edits need a rank ≥ 1, got ${rank}`);
  if (mask.spec.rows || mask.spec.cols) throw new RangeError('low-rank edits change whole matrices: drop the mask row/column ranges');
  let offset = 0;
  const placed = mask.entries.map((e) => {
    if (e.shape.length !== 2) throw new RangeError(`low-rank edits need matrices; ${e.name} has shape [${e.shape}]`);
    const [m, n] = e.shape as [number, number];
    const at = offset;
    offset += rank * (m + n);
    return { name: e.name, shape: e.shape, offset: at, m, n };
  });
  const D = offset;
  return {
    kind,
    rank,
    actionDim: D,
    entries: placed.map((p) => ({
      name: p.name,
      shape: p.shape,
      offset: p.offset,
      edit: (actions, row, alpha) => ({ kind: 'lowrank', factors: actions, offset: row * D + p.offset, rows: p.m, cols: p.n, rank, alpha }),
    })),
  };
}

/** What a SEAL config edits on a model: the resolved mask, its action layout, and the feature layer. */
export function editSpace(model: GPT2, config: SealConfig): { mask: Mask; layout: EditLayout; layer: number } {
  const mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), config.mask);
  const layer = config.featureLayer < 0 ? model.config.nLayer + config.featureLayer : config.featureLayer;
  return { mask, layout: editLayout(mask, config.edit, config.rank), layer };
}

/** Scratch tensors for the edited weights, one per masked tensor, reused edit after edit. */
export class EditScratch {
  readonly overrides = new Map<string, F32>();
  readonly #gpu: Gpu;
  readonly #base: ReadonlyMap<string, F32>;
  readonly #layout: EditLayout;

  constructor(gpu: Gpu, base: ReadonlyMap<string, F32>, layout: EditLayout) {
    this.#gpu = gpu;
    this.#base = base;
    this.#layout = layout;
    for (const e of layout.entries) this.overrides.set(e.name, gpu.empty(e.shape, 'f32', `${e.name}.edited`));
  }

  /**
   * Writes base + α·Δ(actions[row]) (+ α·s·dir when a step along a direction is given) into the
   * scratch tensors; returns them as overrides for a forward. Work encoded after this call sees this
   * edit until the next apply (GPU order).
   */
  apply(actions: F32, row: number, alpha: number, step?: { dirs: F32; row: number; size: number }): ReadonlyMap<string, F32> {
    for (const e of this.#layout.entries) {
      const edits = [e.edit(actions, row, alpha)];
      // The direction is packed like a dense action row (step edits are dense only), so it decodes
      // through the same entry.
      if (step) edits.push(e.edit(step.dirs, step.row, alpha * step.size));
      applyEdits(this.#gpu, this.#base.get(e.name)!, edits, this.overrides.get(e.name));
    }
    return this.overrides;
  }

  /** [1]: ‖θ' − θ‖² over the masked tensors for the edit applied last (exact for any composition). */
  squaredNorm(): F32 {
    const diffs = this.#layout.entries.map((e) => add(this.#gpu, this.overrides.get(e.name)!, this.#base.get(e.name)!, -1));
    const sq = sumSquares(this.#gpu, diffs) as F32;
    for (const d of diffs) d.release();
    return sq;
  }

  release(): void {
    for (const t of this.overrides.values()) t.release();
  }
}
