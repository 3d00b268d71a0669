// `seal selfedit` (and `seal demo --variant text`): SEAL variant B end to end on the bundled data.
// The base model writes self-edits for rl-train passages; ReST-EM (or REINFORCE) rounds train a
// generator LoRA on the ones whose LoRA finetune raised the answers' likelihood; then on held-out
// passages: no update, passage in context, finetune on the passage, on the base's own self-edits and
// on the SEAL generator's after each round, over seeds; the continual experiment; a report.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { gpt2Only, loadModel } from '../model/load.ts';
import { DEFAULT_LORA, Lora } from '../model/lora.ts';
import { loadSquad } from '../tasks/squad.ts';
import { DEFAULT_INNER, InnerLoop, type InnerOptions } from '../seal/text/inner.ts';
import { DEFAULT_OUTER, SelfEditTrainer, type OuterOptions } from '../seal/text/outer.ts';
import { continual, evaluateText, type TextMethod } from '../seal/text/evaluate.ts';
import { methodTable, roundTable, writeTextReport, type RoundRow } from '../report/text-report.ts';
import { UserError } from '../util/errors.ts';

export const TEXT_BASE = 'data/base-text.safetensors';

export interface SelfEditCliOptions {
  model: string;
  dataDir: string;
  run: string;
  trainPassages: number;
  rounds: number;
  samples: number;
  algo: OuterOptions['algo'];
  keep: OuterOptions['keep'];
  genLr: number;
  genSteps: number;
  innerSteps: number;
  innerLr: number;
  /** Self-edits whose LoRAs train at once, stacked (1: one at a time). */
  innerBatch?: number;
  rank: number;
  withPassage?: boolean;
  passages: number;
  seeds: number;
  continual: number;
  maxNew: number;
  temperature: number;
}

/** `seal demo --variant text`: sized to finish within 10 minutes on a quiet 2-core lavapipe machine. */
export const TEXT_DEMO: SelfEditCliOptions = {
  model: TEXT_BASE,
  dataDir: 'data/knowledge',
  run: 'runs/demo-text',
  trainPassages: 4,
  rounds: 2,
  samples: 4,
  algo: 'rest-em',
  keep: 'positive',
  genLr: 3e-3,
  genSteps: 8,
  innerSteps: 10,
  innerLr: 1e-3,
  rank: 8,
  passages: 6,
  seeds: 2,
  continual: 4,
  maxNew: 128,
  temperature: 1,
};

export async function selfEditCommand(dev: DawnOptions, o: SelfEditCliOptions): Promise<void> {
  const t0 = performance.now();
  const train = (await loadSquad(join(o.dataDir, 'rl-train.json'))).slice(0, o.trainPassages);
  const heldOut = (await loadSquad(join(o.dataDir, 'held-out.json'))).slice(0, o.passages);
  rmSync(o.run, { recursive: true, force: true });
  mkdirSync(o.run, { recursive: true });
  const gpu = await dawnGpu(dev);
  const loaded = await loadModel(gpu, o.model).catch((e: Error) => {
    throw new UserError(`${e.message}${o.model === TEXT_BASE ? ` (make it with the pretraining command in the README, "The text variant's base")` : ''}`);
  });
  const [model, tok] = [gpt2Only(loaded.model, 'seal selfedit'), loaded.tokenizer];
  const lora = { ...DEFAULT_LORA, rank: o.rank, alpha: 2 * o.rank };
  const inner: InnerOptions = { ...DEFAULT_INNER, steps: o.innerSteps, lr: o.innerLr, lora, withPassage: Boolean(o.withPassage), ...(o.innerBatch ? { batch: o.innerBatch } : {}) };
  const outer: OuterOptions = { ...DEFAULT_OUTER, algo: o.algo, keep: o.keep, lr: o.genLr, updateSteps: o.genSteps, sampling: { ...DEFAULT_OUTER.sampling, samples: o.samples, maxNew: o.maxNew, temperature: o.temperature } };
  const generator = Lora.create(model, lora, 1);
  const trainer = new SelfEditTrainer(model, tok, generator, outer);
  const rewarder = new InnerLoop(model, tok, train, inner);
  const snapshots: Lora[] = [];
  const rounds: RoundRow[] = [];
  try {
    console.log(`1/3  ${o.rounds} ${o.algo} rounds on ${train.length} rl-train passages × ${o.samples} self-edits (inner loop: LoRA rank ${o.rank}, ${o.innerSteps} steps, lr ${o.innerLr})`);
    for (let r = 1; r <= o.rounds; r++) {
      const ts = performance.now();
      const res = await trainer.step(train, rewarder, r);
      const row: RoundRow = { round: r, meanReward: res.meanReward, used: res.used, samples: res.edits.length, loss: res.loss, seconds: (performance.now() - ts) / 1000 };
      rounds.push(row);
      console.log(`     round ${r}: mean reward ${row.meanReward.toFixed(3)}, ${o.algo === 'rest-em' ? 'kept' : 'used'} ${row.used}/${row.samples}, ${row.seconds.toFixed(0)} s`);
      const snap = generator.clone(gpu);
      snapshots.push(snap);
      await snap.save(join(o.run, `generator-round-${r}.safetensors`), gpu, { round: r });
      writeFileSync(join(o.run, 'rounds.jsonl'), rounds.map((x) => JSON.stringify(x)).join('\n') + '\n');
    }
    const seeds = Array.from({ length: o.seeds }, (_, i) => i + 1);
    const methods: TextMethod[] = [
      { name: 'no update', kind: 'none' },
      { name: 'passage only', kind: 'passage' },
      { name: "base model's self-edits", kind: 'self-edit', generator: null },
      ...snapshots.map((g, i): TextMethod => ({ name: `SEAL self-edits, round ${i + 1}`, kind: 'self-edit', generator: g })),
      { name: 'passage in context (reference)', kind: 'in-context' },
    ];
    console.log(`2/3  held-out: ${heldOut.length} passages never trained on, ${o.seeds} seeds, ${methods.length} methods`);
    const evalOpts = { seeds, inner, sampling: outer.sampling };
    const results = await evaluateText(model, tok, heldOut, methods, evalOpts);
    const last = methods.at(-2)!;
    const n = Math.min(o.continual, heldOut.length);
    if (n > 0) console.log(`3/3  continual: ${last.name} on ${n} held-out passages in sequence`);
    const cont = n > 0 ? await continual(model, tok, heldOut.slice(0, n), last, evalOpts, 1) : undefined;
    const setup =
      `${o.model}; ${o.rounds} ${o.algo} rounds on ${train.length} rl-train passages × ${o.samples} samples; inner loop LoRA rank ${o.rank}, ${o.innerSteps} steps at lr ${o.innerLr}` +
      `${o.withPassage ? ' on passage + self-edit' : ' on the self-edit alone'}; held-out ${heldOut.length} passages, seeds ${seeds.join(', ')}; answers scored with no passage in context.`;
    const files = await writeTextReport(join(o.run, 'report'), { title: 'SEAL with text self-edits', setup, methods: results, rounds, ...(cont ? { continual: { method: last.name, result: cont } } : {}) });
    writeFileSync(join(o.run, 'results.json'), JSON.stringify({ setup, rounds, methods: results, continual: cont }, null, 1));
    console.log(`\n${roundTable(rounds)}\n\n${methodTable(results)}\n`);
    console.log(`finished in ${((performance.now() - t0) / 60000).toFixed(1)} min; report: ${files[0]}`);
  } finally {
    for (const s of snapshots) s.release();
    rewarder.release();
    trainer.release();
    generator.release();
    model.release();
    gpu.destroy();
  }
}
