// Finetuning a loaded model on a passage: the bundled tiny GPT-2 learns one held-out passage it has
// never seen (forward, backward and an AdamW step per iteration, all on the GPU), and its answers
// to the passage's questions, asked without the passage, get more likely.
//   node examples/finetune.mjs [steps] [out.safetensors]
import { dawnGpu } from 'seal-webgpu';
import { bundled, gpt2Only, loadModel, Optimizer, passageBatch, saveCheckpoint } from 'seal-webgpu/model';
import { answerNll, greedyAnswers, loadSquad } from 'seal-webgpu/seal';

const steps = Number(process.argv[2] ?? 8);
const out = process.argv[3];

const gpu = await dawnGpu(); // SEAL_BACKEND, SEAL_ADAPTER, … choose the adapter
try {
  const loaded = await loadModel(gpu, bundled('base.safetensors'));
  // Checkpoints are written in GPT-2's layout.
  const [model, tokenizer] = [gpt2Only(loaded.model, 'examples/finetune.mjs'), loaded.tokenizer];
  const [passage] = await loadSquad(bundled('knowledge/held-out.json'));
  const qa = passage.questions.map((q) => ({ question: q.question, answer: q.answers[0] }));
  const meanNll = async () => (await answerNll(model, tokenizer, qa)).reduce((s, x) => s + x, 0) / qa.length;

  const before = await meanNll();
  const batch = passageBatch(tokenizer, passage.context, model.config.nCtx);
  const tokens = gpu.tensor(batch.tokens, [batch.B, batch.T]);
  const targets = gpu.tensor(batch.targets, [batch.B, batch.T]);
  // A constant learning rate: no warm-up, no decay.
  const optimizer = new Optimizer(model, { lr: 1e-3, warmup: 0, totalSteps: steps, minLrRatio: 1, weightDecay: 0, gradClip: 1 });
  for (let i = 0; i < steps; i++) {
    const { loss } = await optimizer.update(tokens, targets);
    console.log(`step ${i + 1}: passage loss ${loss.toFixed(3)}`);
  }
  const after = await meanNll();
  console.log(`answer NLL on "${passage.title}" (no passage in context): ${before.toFixed(3)} → ${after.toFixed(3)}`);
  const answers = await greedyAnswers(model, tokenizer, [qa[0].question]);
  console.log(`Q: ${qa[0].question}  A: ${answers[0]}  (reference: ${qa[0].answer})`);
  if (out) {
    await saveCheckpoint(out, model, { tokenizer: tokenizer.name });
    console.log(`wrote ${out}`);
  }
  for (const t of [tokens, targets]) t.release();
  optimizer.release();
  model.release();
} finally {
  gpu.destroy();
}
