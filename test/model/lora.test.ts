// LoRA adapters in the GPT-2 pass: a fresh adapter is the base exactly; adapters equal their merged
// weights; their gradients follow the chain rule through the merged weight; training them moves the
// loss and leaves the base's bits alone.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GPT2Config } from '../../src/model/config.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { Lora, LoraOptimizer, type LoraSpec } from '../../src/model/lora.ts';
import { gemm } from '../../src/reference/matmul.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'lora-test-'));
test.after(() => {
  releaseGpu();
  rmSync(dir, { recursive: true, force: true });
});

const config: GPT2Config = { vocabSize: 29, nCtx: 8, nLayer: 2, nHead: 3, nEmbd: 18 };
const SPEC: LoraSpec = { targets: ['h.*.attn.c_attn.weight', 'h.1.mlp.*.weight', 'h.0.attn.c_proj.weight'], rank: 3, alpha: 4 };
const [B, T] = [2, 7];

async function setup(seed: number) {
  const g = await gpu();
  const r = rng(seed);
  const model = GPT2.init(g, config, seed);
  const lora = Lora.create(model, SPEC, seed);
  const tokens = g.tensor(Uint32Array.from({ length: B * T }, () => r.int(config.vocabSize)), [B, T]);
  const targets = g.tensor(Uint32Array.from({ length: B * T }, () => r.int(config.vocabSize)), [B, T]);
  return { g, r, model, lora, tokens, targets };
}

/** Gives B random values (a fresh adapter's B is zero, which would hide most of the math). */
function randomiseB(g: Awaited<ReturnType<typeof gpu>>, lora: Lora, r: ReturnType<typeof rng>): void {
  for (const f of lora.adapters.values()) g.write(f.b, r.uniformArray(f.b.size, -0.3, 0.3));
}

test('targets resolve by glob; a non-linear weight or a bad rank is refused', async () => {
  const { model, lora, tokens, targets } = await setup(1);
  assert.equal([...lora.adapters.keys()], ['h.0.attn.c_attn.weight', 'h.0.attn.c_proj.weight', 'h.1.attn.c_attn.weight', 'h.1.mlp.c_fc.weight', 'h.1.mlp.c_proj.weight']);
  assert.throws(() => Lora.targets(model, { ...SPEC, targets: ['wte.weight'] }), /not a block's linear weight/);
  assert.throws(() => Lora.targets(model, { ...SPEC, rank: 0 }), /rank must be a positive integer/);
  for (const x of [lora, model, tokens, targets]) x.release();
});

test("a fresh adapter (B = 0) gives the base model's logits bit for bit", async () => {
  const { g, model, lora, tokens, targets } = await setup(2);
  const base = model.forward(tokens, targets);
  const adapted = model.forward(tokens, targets, undefined, { adapters: lora.adapters });
  const [a, b] = await g.readMany([base.logits, adapted.logits]);
  sameBits(a as Float32Array, b as Float32Array, 'logits');
  for (const x of [base, adapted, lora, model, tokens, targets]) x.release();
});

test('merged equals unmerged: adapters in the pass give the logits and loss of the merged weights', async () => {
  const { g, r, model, lora, tokens, targets } = await setup(3);
  randomiseB(g, lora, r);
  const merged = lora.merged(model);
  const viaMerge = model.forward(tokens, targets, merged);
  const viaAdapters = model.forward(tokens, targets, undefined, { adapters: lora.adapters });
  const plain = model.forward(tokens, targets);
  const [lm, la, lossM, lossA, lp] = await g.readMany([viaMerge.logits, viaAdapters.logits, viaMerge.loss!, viaAdapters.loss!, plain.logits]);
  close(la!, lm!, 1e-4, 1e-5, 'logits');
  close(lossA!, lossM!, 1e-5, 1e-6, 'loss');
  assert.ok(lp!.some((v, i) => Math.abs(v - lm![i]!) > 1e-3), 'the adapter changes the logits');
  for (const x of [viaMerge, viaAdapters, plain, lora, model, tokens, targets, ...merged.values()]) x.release();
});

test("adapter gradients follow the chain rule through the merged weight: dA = s·dW'·Bᵀ, dB = s·Aᵀ·dW'", async () => {
  const { g, r, model, lora, tokens, targets } = await setup(4);
  randomiseB(g, lora, r);
  const merged = lora.merged(model);
  const gm = model.zerosLike();
  const passM = model.forward(tokens, targets, merged);
  passM.backward(gm);
  const scratch = model.zerosLike();
  const ag = new Map([...lora.adapters].map(([n, f]) => [n, { da: g.zeros(f.a.shape), db: g.zeros(f.b.shape) }]));
  const passA = model.forward(tokens, targets, undefined, { adapters: lora.adapters });
  passA.backward(scratch, undefined, ag);
  for (const [name, f] of lora.adapters) {
    const [nIn, rank] = f.a.shape as [number, number];
    const nOut = f.b.shape[1]!;
    const [dW, a, b, da, db] = await g.readMany([gm.get(name)!, f.a, f.b, ag.get(name)!.da, ag.get(name)!.db]);
    close(da!, gemm(dW!, b!, nIn, nOut, rank, { transB: true, alpha: f.scale }), 1e-4, 1e-5, `dA ${name}`);
    close(db!, gemm(a!, dW!, rank, nIn, nOut, { transA: true, alpha: f.scale }), 1e-4, 1e-5, `dB ${name}`);
  }
  // The rest of the model sees the same gradient either way (the embedding's collects every layer's).
  const [w1, w2] = await g.readMany([gm.get('wte.weight')!, scratch.get('wte.weight')!]);
  close(w2!, w1!, 1e-4, 1e-5, 'wte gradient');
  // A frozen base (grads null) skips the base's gradients and gives the adapters the same ones.
  const frozen = new Map([...lora.adapters].map(([n, f]) => [n, { da: g.zeros(f.a.shape), db: g.zeros(f.b.shape) }]));
  passA.backward(null, undefined, frozen);
  for (const [name, x] of frozen) {
    const [a1, a2, b1, b2] = await g.readMany([ag.get(name)!.da, x.da, ag.get(name)!.db, x.db]);
    close(a2!, a1!, 1e-5, 1e-7, `frozen dA ${name}`);
    close(b2!, b1!, 1e-5, 1e-7, `frozen dB ${name}`);
    x.da.release(), x.db.release();
  }
  for (const x of [passM, passA, lora, model, tokens, targets, ...merged.values(), ...gm.values(), ...scratch.values()]) x.release();
  for (const x of ag.values()) x.da.release(), x.db.release();
});

test('training the adapter lowers the loss and leaves the base bit-identical; save and load round-trip', async () => {
  const { g, model, lora, tokens, targets } = await setup(5);
  const before = await model.toArrays();
  const opt = new LoraOptimizer(model, lora, { lr: 1e-2, weightDecay: 0, gradClip: 1 });
  const losses: number[] = [];
  for (let i = 0; i < 15; i++) losses.push(await opt.update(tokens, targets));
  assert.ok(losses.at(-1)! < losses[0]! - 0.1, `loss ${losses[0]} → ${losses.at(-1)}`);
  const after = await model.toArrays();
  for (const [n, a] of before) sameBits(after.get(n)!, a, n);
  const path = join(dir, 'a.safetensors');
  await lora.save(path, g, { step: opt.step });
  const { lora: back, state } = await Lora.load(model, path);
  assert.equal(state, { step: 15 });
  for (const [n, t] of lora.tensors()) sameBits((await g.read(back.tensors().get(n)!)) as Float32Array, (await g.read(t)) as Float32Array, n);
  for (const x of [back, lora, model, tokens, targets]) x.release();
  opt.release();
  assert.is(g.liveTensors, 0, 'nothing leaks');
});

test.run();
