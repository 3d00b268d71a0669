// Adapting to a passage: one forward and backward of the frozen model over a new passage gives its
// features, an edit rule turns them into a weight edit, and the edited model answers questions about
// the passage without seeing it. The rule is a trained SEAL generator when you give one (a run's
// policy.safetensors, e.g. from `seal demo --quick` or `seal train`), else a fixed step along the
// sign of the passage's gradient (the baseline a trained generator must beat).
//   node examples/adapt.mjs [policy.safetensors]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dawnGpu } from 'seal-webgpu';
import { bundled, loadModel } from 'seal-webgpu/model';
import { Adapter, answerNll, greedyAnswers, loadSquad, readEdit, resolveConfig, writeEdit } from 'seal-webgpu/seal';

const policy = process.argv[2];
const gpu = await dawnGpu(); // SEAL_BACKEND, SEAL_ADAPTER, … choose the adapter
const dir = mkdtempSync(join(tmpdir(), 'seal-adapt-'));
try {
  const { model, tokenizer } = await loadModel(gpu, bundled('base.safetensors'));
  const adapter = policy ? await Adapter.load(gpu, model, tokenizer, policy) : Adapter.fixedStep(model, tokenizer, resolveConfig(), 'sign', 6);
  const [passage] = await loadSquad(bundled('knowledge/held-out.json'));
  const qa = passage.questions.map((q) => ({ question: q.question, answer: q.answers[0] }));
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;

  const edit = await adapter.adapt(passage.context);
  const before = mean(await answerNll(model, tokenizer, qa));
  const after = mean(await answerNll(model, tokenizer, qa, { overrides: edit.overrides }));
  console.log(`${policy ? `SEAL generator ${policy}` : 'fixed sign step (size 6)'}: edit norm ${edit.editNorm.toFixed(2)} in ${edit.ms.toFixed(0)} ms`);
  console.log(`answer NLL on "${passage.title}" (no passage in context): ${before.toFixed(3)} → ${after.toFixed(3)}`);
  const [answer] = await greedyAnswers(model, tokenizer, [qa[0].question], { overrides: edit.overrides });
  console.log(`Q: ${qa[0].question}  A: ${answer}  (reference: ${qa[0].answer})`);

  // The edit alone (θ′ − θ of the edited tensors), written and read back as a versioned file.
  const file = join(dir, 'edit.safetensors');
  await writeEdit(file, model, edit.overrides);
  const deltas = await readEdit(file);
  console.log(`wrote the edit: ${[...deltas.keys()].join(', ')}`);
  adapter.release();
  model.release();
} finally {
  rmSync(dir, { recursive: true, force: true });
  gpu.destroy();
}
