// LoRA adapters in the Llama-family pass (nn.Linear's W [out, in]; grouped-query attention, an
// untied head, Qwen2's q/k/v biases): a fresh adapter is the base exactly; adapters equal their
// merged weights (W + s·(A·B)ᵀ); their gradients follow the chain rule through the merged weight,
// whose own gradient llama.test.ts checks against finite differences; training them moves the loss
// and leaves the base's bits alone, f32 or f16.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LlamaConfig } from '../../src/model/llama-config.ts';
import { Llama } from '../../src/model/llama.ts';
import type { WeightDtype } from '../../src/model/lm.ts';
import { defaultLora, Lora, LoraOptimizer, type LoraSpec } from '../../src/model/lora.ts';
import { gemm } from '../../src/reference/matmul.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'llama-lora-test-'));
test.after(() => {
  releaseGpu();
  rmSync(dir, { recursive: true, force: true });
});

// Untied head, GQA group 2, head_dim ≠ C/NH; and Qwen2 (biases) with a tied head, group 3.
const LLAMA: LlamaConfig = { modelType: 'llama', vocabSize: 23, nCtx: 8, nLayer: 2, nEmbd: 12, nHead: 4, nKvHead: 2, headDim: 4, intermediate: 20, ropeTheta: 10000, ropeScaling: null, rmsEps: 1e-5, tied: false, qkvBias: false };
const QWEN2: LlamaConfig = { ...LLAMA, modelType: 'qwen2', nHead: 3, nKvHead: 1, headDim: 6, tied: true, qkvBias: true };
const SPEC: LoraSpec = { targets: ['model.layers.*.self_attn.*_proj.weight', 'model.layers.1.mlp.*.weight'], rank: 3, alpha: 4 };
const [B, T] = [2, 7];

async function setup(config: LlamaConfig, seed: number, spec = SPEC, dtype: WeightDtype = 'f32') {
  const g = await gpu();
  const r = rng(seed);
  const model = Llama.init(g, config, seed, dtype);
  const lora = Lora.create(model, spec, seed);
  // A fresh adapter's B is zero, which would hide most of the math.
  for (const f of lora.adapters.values()) g.write(f.b, r.uniformArray(f.b.size, -0.3, 0.3));
  const tokens = g.tensor(Uint32Array.from({ length: B * T }, () => r.int(config.vocabSize)), [B, T]);
  const targets = g.tensor(Uint32Array.from({ length: B * T }, () => r.int(config.vocabSize)), [B, T]);
  return { g, r, model, lora, tokens, targets };
}

const freshGrads = (g: Awaited<ReturnType<typeof gpu>>, lora: Lora) => new Map([...lora.adapters].map(([n, f]) => [n, { da: g.zeros(f.a.shape), db: g.zeros(f.b.shape) }]));

test('targets: every linear of the blocks by default; a norm, a bias or a bad rank is refused', async () => {
  const { g, model, lora, tokens, targets } = await setup(QWEN2, 1);
  assert.is(Lora.targets(model, defaultLora(model.kind)).length, 7 * QWEN2.nLayer);
  assert.equal([...lora.adapters.keys()].slice(0, 4), ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight', 'model.layers.0.self_attn.v_proj.weight', 'model.layers.0.self_attn.o_proj.weight']);
  // Shapes by nn.Linear's layout: k_proj is [KVH·HD, C], so A [C, r] and B [r, KVH·HD].
  const k = lora.adapters.get('model.layers.0.self_attn.k_proj.weight')!;
  assert.equal([k.a.shape, k.b.shape], [[12, 3], [3, 6]]);
  assert.throws(() => Lora.targets(model, { ...SPEC, targets: ['model.layers.0.input_layernorm.weight'] }), /lora: model\.layers\.0\.input_layernorm\.weight is not a block's linear weight \(self_attn\.q_proj, /);
  assert.throws(() => Lora.targets(model, { ...SPEC, targets: ['model.layers.*.self_attn.q_proj.bias'] }), /are not a block's linear weight/);
  assert.throws(() => Lora.targets(model, { ...SPEC, targets: ['h.*.mlp.c_fc.weight'] }), /matches no tensor/);
  assert.throws(() => Lora.targets(model, { ...SPEC, rank: 0 }), /rank must be a positive integer/);
  for (const x of [lora, model, tokens, targets]) x.release();
  assert.is(g.liveTensors, 0, 'nothing leaks');
});

test("a fresh adapter (B = 0) gives the base model's logits bit for bit", async () => {
  const g = await gpu();
  const model = Llama.init(g, LLAMA, 2);
  const lora = Lora.create(model, defaultLora(model.kind), 2);
  const tokens = g.tensor(Uint32Array.from({ length: B * T }, (_, i) => (i * 7) % LLAMA.vocabSize), [B, T]);
  const base = model.forward(tokens);
  const adapted = model.forward(tokens, undefined, undefined, { adapters: lora.adapters });
  const [a, b] = await g.readMany([base.logits, adapted.logits]);
  sameBits(a as Float32Array, b as Float32Array, 'logits');
  for (const x of [base, adapted, lora, model, tokens]) x.release();
});

for (const [what, config] of [['llama: untied head, GQA group 2', LLAMA], ['qwen2: q/k/v biases, tied head, GQA group 3', QWEN2]] as const) {
  test(`${what}: merged equals unmerged; adapter gradients follow the chain rule through W' = W + s·(A·B)ᵀ`, async () => {
    const { g, model, lora, tokens, targets } = await setup(config, 3);
    const merged = lora.merged(model);
    const gm = model.zerosLike();
    const passM = model.forward(tokens, targets, merged);
    passM.backward(gm);
    const scratch = model.zerosLike();
    const ag = freshGrads(g, lora);
    const passA = model.forward(tokens, targets, undefined, { adapters: lora.adapters });
    passA.backward(scratch, undefined, ag);
    const plain = model.forward(tokens, targets);
    const [lm, la, lossM, lossA, lp] = await g.readMany([passM.logits, passA.logits, passM.loss!, passA.loss!, plain.logits]);
    close(la!, lm!, 1e-4, 1e-5, 'logits');
    close(lossA!, lossM!, 1e-5, 1e-6, 'loss');
    assert.ok(lp!.some((v, i) => Math.abs(v - lm![i]!) > 1e-3), 'the adapter changes the logits');
    for (const [name, f] of lora.adapters) {
      const [nIn, rank] = f.a.shape as [number, number];
      const nOut = f.b.shape[1]!;
      const [dW, a, b, da, db] = await g.readMany([gm.get(name)!, f.a, f.b, ag.get(name)!.da, ag.get(name)!.db]);
      // dW' is [out, in]: dA = s·dW'ᵀ·Bᵀ, dB = s·Aᵀ·dW'ᵀ.
      close(da!, gemm(dW!, b!, nIn, nOut, rank, { transA: true, transB: true, alpha: f.scale }), 1e-4, 1e-5, `dA ${name}`);
      close(db!, gemm(a!, dW!, rank, nIn, nOut, { transA: true, transB: true, alpha: f.scale }), 1e-4, 1e-5, `dB ${name}`);
    }
    // What lies below the adapters (the embedding's gradient collects every layer's dx) is the same either way.
    const [w1, w2] = await g.readMany([gm.get('model.embed_tokens.weight')!, scratch.get('model.embed_tokens.weight')!]);
    close(w2!, w1!, 1e-4, 1e-5, 'embedding gradient');
    // A frozen base (grads null) forms no base gradient and gives the adapters the same ones.
    const frozen = freshGrads(g, lora);
    passA.backward(null, undefined, frozen);
    for (const [name, x] of frozen) {
      const [a1, a2, b1, b2] = await g.readMany([ag.get(name)!.da, x.da, ag.get(name)!.db, x.db]);
      close(a2!, a1!, 1e-5, 1e-7, `frozen dA ${name}`);
      close(b2!, b1!, 1e-5, 1e-7, `frozen dB ${name}`);
    }
    assert.throws(() => passA.backward(null), /no adapter gradients given for model\.layers\.0\.self_attn\.q_proj\.weight/);
    for (const x of [passM, passA, plain, lora, model, tokens, targets, ...merged.values(), ...gm.values(), ...scratch.values()]) x.release();
    for (const x of [...ag.values(), ...frozen.values()]) x.da.release(), x.db.release();
    assert.is(g.liveTensors, 0, 'nothing leaks');
  });
}

for (const dtype of ['f32', 'f16'] as const) {
  test(`${dtype} weights: training the adapter lowers the loss and leaves the base bit-identical; save and load round-trip`, async () => {
    const { g, model, lora, tokens, targets } = await setup(LLAMA, 5, defaultLora('llama'), dtype);
    const before = await model.toArrays();
    const opt = new LoraOptimizer(model, lora, { lr: 1e-2, weightDecay: 0, gradClip: 1 });
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) losses.push(await opt.update(tokens, targets));
    assert.ok(losses.at(-1)! < losses[0]! - 0.05, `loss ${losses[0]} → ${losses.at(-1)}`);
    const after = await model.toArrays();
    for (const [n, a] of before) sameBits(after.get(n)!, a, n);
    const path = join(dir, `${dtype}.safetensors`);
    await lora.save(path, g, { step: opt.step }, opt);
    const { lora: back, state, optimizer } = await Lora.load(model, path);
    assert.equal([state, optimizer?.step], [{ step: 8 }, 8]);
    for (const [n, t] of lora.tensors()) sameBits((await g.read(back.tensors().get(n)!)) as Float32Array, (await g.read(t)) as Float32Array, n);
    for (const x of [back, lora, model, tokens, targets, ...optimizer!.m.values(), ...optimizer!.v.values()]) x.release();
    opt.release();
    assert.is(g.liveTensors, 0, 'nothing leaks');
  });
}

test.run();
