// `seal adapt`: inference-time adaptation with a trained generator. For each new passage, one
// generator pass gives the edit (no RL); the edited model answers the questions or a prompt; the
// edit alone or the whole edited model can be written as safetensors.
import { existsSync } from 'node:fs';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { Gpu } from '../gpu/gpu.ts';
import type { F32 } from '../gpu/tensor.ts';
import { saveCheckpoint } from '../model/checkpoint.ts';
import { loadModel } from '../model/load.ts';
import { GPT2 } from '../model/gpt2.ts';
import type { LanguageModel } from '../model/lm.ts';
import { generate } from '../model/generate.ts';
import { Adapter, tryPassage, writeEdit } from '../seal/adapt.ts';
import { Generator } from '../seal/generator.ts';
import { loadSquad, type Passage } from '../tasks/squad.ts';
import { bundled } from '../io/files.ts';
import { UserError } from '../util/errors.ts';

export interface AdaptOptions {
  policy: string;
  model?: string;
  passages?: string;
  text?: string;
  question: string[];
  prompt?: string;
  maxNew: number;
  writeEdit?: string;
  writeModel?: string;
  json?: boolean;
}

function inputs(o: AdaptOptions): Promise<Passage[]> | Passage[] {
  if (o.passages && o.text) throw new UserError('give --passages FILE or --text PASSAGE, not both');
  if (o.passages) return loadSquad(o.passages);
  if (!o.text) throw new UserError('nothing to adapt to: give --passages FILE (SQuAD JSON) or --text PASSAGE');
  return [{ id: 'text', title: 'text', context: o.text, questions: o.question.map((q, i) => ({ id: `q${i}`, question: q, answers: [] })) }];
}

export async function adaptCommand(dev: DawnOptions, o: AdaptOptions): Promise<void> {
  if (!existsSync(o.policy)) throw new UserError(`policy ${o.policy} not found: train one with \`seal train\` (or \`npm start\`, which writes runs/demo/policy.safetensors)`);
  const passages = await inputs(o);
  if ((o.writeEdit || o.writeModel) && passages.length !== 1) throw new UserError('--write-edit / --write-model write one edit: adapt to one passage (--text, or a file with one passage)');
  const modelPath = o.model ?? (await Generator.read(o.policy)).metadata.model ?? bundled('base.safetensors');
  const gpu = await dawnGpu(dev);
  try {
    const { model, tokenizer: tok } = await loadModel(gpu, modelPath);
    const adapter = await Adapter.load(gpu, model, tok, o.policy);
    let correct = [0, 0];
    let total = 0;
    for (const p of passages) {
      const { trial, overrides } = await tryPassage(adapter, tok, p, o.maxNew);
      if (o.json) console.log(JSON.stringify(trial));
      else console.log(`\n${p.title}: edit ‖Δ‖ ${trial.editNorm.toFixed(3)} in ${trial.ms.toFixed(0)} ms`);
      for (const q of trial.questions) {
        if (q.answer !== undefined) {
          correct[0]! += Number(q.baseEm);
          correct[1]! += Number(q.editedEm);
          total++;
        }
        if (!o.json) console.log(`  Q: ${q.question}\n     base: ${q.base}   edited: ${q.edited}${q.answer !== undefined ? `   (answer: ${q.answer})` : ''}`);
      }
      if (o.prompt) {
        const [b, a] = [await generate(model, tok, [o.prompt], { maxNew: o.maxNew }), await generate(model, tok, [o.prompt], { maxNew: o.maxNew, overrides })];
        console.log(`  prompt: ${JSON.stringify(o.prompt)}\n     base: ${JSON.stringify(b[0]!.text)}\n     edited: ${JSON.stringify(a[0]!.text)}`);
      }
      if (o.writeEdit) {
        await writeEdit(o.writeEdit, model, overrides);
        console.log(`wrote the edit (${[...overrides.keys()].join(', ')}) to ${o.writeEdit}`);
      }
      if (o.writeModel) await writeEditedModel(gpu, o.writeModel, model, overrides, tok.name);
    }
    if (total && !o.json) console.log(`\nexact match: base ${correct[0]}/${total}, edited ${correct[1]}/${total}`);
    adapter.release();
    model.release();
  } finally {
    gpu.destroy();
  }
}

/** The whole edited model: a checkpoint like the base with the edited tensors in place. */
async function writeEditedModel(gpu: Gpu, path: string, model: LanguageModel, overrides: ReadonlyMap<string, F32>, tokenizer: string): Promise<void> {
  if (!(model instanceof GPT2)) throw new UserError(`--write-model writes seal-webgpu GPT-2 checkpoints; for this ${model.kind} model write the edit alone (--write-edit)`);
  const edited = new GPT2(gpu, model.config, new Map([...model.params].map(([k, t]) => [k, overrides.get(k) ?? t])));
  await saveCheckpoint(path, edited, { tokenizer });
  console.log(`wrote the edited model to ${path}`);
}
