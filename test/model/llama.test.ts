// The GPU Llama family against the independent CPU reference (src/reference/llama.ts): logits within
// 1e-4 relative, and the GPU backward against central finite differences of the reference loss
// (f64), for a tied head with grouped-query attention (group 2), an untied head with group 3 and
// llama3 rope scaling, and Qwen2's q/k/v biases. Also: the KV-cache decoder against full forwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateTokens } from '../../src/model/generate.ts';
import { Llama } from '../../src/model/llama.ts';
import { SMOLLM2_135M } from '../../src/model/hf-write.ts';
import { llamaFromHf, llamaParamSpecs, llamaToHf, ropeInvFreq, type LlamaConfig } from '../../src/model/llama-config.ts';
import { IGNORE_INDEX } from '../../src/ops/crossentropy.ts';
import { rowIndex } from '../../src/ops/rows.ts';
import * as ref from '../../src/reference/llama.ts';
import { close, gpu, releaseGpu, rng } from '../helpers.ts';

test.after(releaseGpu);

const base: LlamaConfig = {
  modelType: 'llama',
  vocabSize: 23,
  nCtx: 16,
  nLayer: 2,
  nEmbd: 12,
  nHead: 4,
  nKvHead: 2,
  headDim: 4,
  intermediate: 20,
  ropeTheta: 100000,
  ropeScaling: null,
  rmsEps: 1e-5,
  tied: true,
  qkvBias: false,
};
const CONFIGS: [string, LlamaConfig][] = [
  ['tied, GQA group 2', base],
  ['untied, GQA group 3, llama3 rope scaling', { ...base, nHead: 3, nKvHead: 1, headDim: 6, tied: false, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8 } }],
  ['qwen2: q/k/v biases, untied, head_dim ≠ C/NH', { ...base, modelType: 'qwen2', qkvBias: true, tied: false, headDim: 6, ropeTheta: 10000 }],
];

async function setup(config: LlamaConfig, seed: number, B: number, T: number) {
  const g = await gpu();
  const r = rng(seed);
  // Weights large enough that every path carries signal; norms and biases away from 1 and 0.
  const cpu = ref.initParams(config, r, 0.3);
  for (const s of llamaParamSpecs(config)) if (s.init === 'ones' || s.init === 'zeros') cpu.get(s.name)!.forEach((v, i, a) => (a[i] = v + 0.2 * r.normal()));
  const model = new Llama(g, config, new Map([...cpu].map(([k, v]) => [k, g.tensor(Float32Array.from(v), llamaParamSpecs(config).find((s) => s.name === k)!.shape)])));
  const toks = Uint32Array.from({ length: B * T }, () => r.int(config.vocabSize));
  const tgts = Uint32Array.from({ length: B * T }, (_, i) => (i % 5 === 2 ? IGNORE_INDEX : r.int(config.vocabSize)));
  // The reference sees exactly the f32 weights the GPU has.
  for (const v of cpu.values()) v.set(Float32Array.from(v));
  return { g, model, cpu, toks, tgts, tokens: g.tensor(toks, [B, T]), targets: g.tensor(tgts, [B, T]) };
}

for (const [what, config] of CONFIGS) {
  test(`${what}: logits within 1e-4 relative of the reference; backward matches finite differences`, async () => {
    const [B, T] = [2, 6];
    const { g, model, cpu, toks, tgts, tokens, targets } = await setup(config, 7, B, T);
    const grads = model.zerosLike();
    const pass = model.forward(tokens, targets);
    pass.backward(grads);
    const [logits, loss] = await g.readMany([pass.logits, pass.loss!]);
    const want = ref.forward(config, cpu, toks, B, T, tgts);
    const scale = Math.max(...want.logits.map(Math.abs));
    close(logits!, want.logits, 1e-4, 1e-4 * scale, 'logits');
    close(loss!, [want.loss], 1e-5, 1e-5, 'loss');
    const names = [...grads.keys()];
    const got = await g.readMany(names.map((n) => grads.get(n)!));
    const r = rng(3);
    names.forEach((name, k) => {
      const p = cpu.get(name)!;
      for (let j = 0; j < 4; j++) {
        const i = r.int(p.length);
        const v = p[i]!;
        const eps = 1e-5;
        p[i] = v + eps;
        const up = ref.forward(config, cpu, toks, B, T, tgts).loss;
        p[i] = v - eps;
        const down = ref.forward(config, cpu, toks, B, T, tgts).loss;
        p[i] = v;
        const num = (up - down) / (2 * eps);
        const a = got[k]![i]!;
        assert.ok(Math.abs(a - num) <= 2e-5 + 2e-3 * Math.abs(num), `${name}[${i}]: GPU ${a}, finite differences ${num}`);
      }
    });
    pass.release();
    for (const t of grads.values()) t.release();
    model.release();
    tokens.release();
    targets.release();
    assert.is(g.liveTensors, 0, `leaked: ${g.liveLabels().join(', ')}`);
  });
}

test('generation with the KV cache equals full forwards, prompts of different lengths batched', async () => {
  const config = CONFIGS[2]![1];
  const { g, model, tokens, targets } = await setup(config, 5, 1, 1);
  tokens.release();
  targets.release();
  const prompts = [[1, 2, 3, 4, 5], [7, 8], [9]];
  const opts = { maxNew: 6, temperature: 1, seed: 4 };
  const cached = await generateTokens(model, prompts, opts);
  const full = await generateTokens(model, prompts, { ...opts, cache: false });
  assert.equal(cached, full);
  assert.ok(cached.every((c) => c.tokens.length === 6));
  model.release();
  assert.is(g.liveTensors, 0, `leaked: ${g.liveLabels().join(', ')}`);
});

test('a token id past the vocabulary gives NaN logits in its row, not a silently wrong embedding', async () => {
  const { g, model, tokens, targets } = await setup(base, 9, 1, 1);
  tokens.release();
  targets.release();
  const tt = g.tensor(Uint32Array.from([1, base.vocabSize]), [1, 2]);
  const pass = model.forward(tt);
  const logits = await g.read(pass.logits);
  assert.ok(logits.subarray(0, base.vocabSize).every(Number.isFinite), 'row 0 (causal: it never sees row 1)');
  assert.ok(logits.subarray(base.vocabSize).every(Number.isNaN), 'row 1');
  pass.release();
  tt.release();
  model.release();
});

test('config.json: SmolLM2 round trip, Qwen2 defaults, rope scaling and named errors', () => {
  assert.equal(llamaFromHf(llamaToHf(SMOLLM2_135M), 'smol'), SMOLLM2_135M);
  const qwen = llamaFromHf({ model_type: 'qwen2', vocab_size: 10, max_position_embeddings: 8, num_hidden_layers: 1, hidden_size: 8, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 4 }, 'q');
  assert.equal([qwen.qkvBias, qwen.tied, qwen.headDim, qwen.ropeTheta], [true, false, 4, 10000]);
  // Llama-3.2's scaling: high frequencies kept, low ones divided by the factor, a blend between.
  const inv = ropeInvFreq({ headDim: 64, ropeTheta: 500000, ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 } });
  const plain = ropeInvFreq({ headDim: 64, ropeTheta: 500000, ropeScaling: null });
  assert.is(inv[0], plain[0]);
  assert.is(inv[31], plain[31]! / 32);
  const mid = inv.findIndex((f, i) => f !== plain[i] && f !== plain[i]! / 32);
  assert.ok(mid > 0 && inv[mid]! < plain[mid]! && inv[mid]! > plain[mid]! / 32, 'a blended frequency between');
  const base = llamaToHf(SMOLLM2_135M);
  assert.throws(() => llamaFromHf({ ...base, num_key_value_heads: 4 }, 'c.json'), /c\.json: .*num_key_value_heads \(4\) must divide num_attention_heads \(9\)/);
  assert.throws(() => llamaFromHf({ ...base, hidden_act: 'gelu' }, 'c.json'), /hidden_act 'gelu' is not supported/);
  assert.throws(() => llamaFromHf({ ...base, hidden_size: undefined }, 'c.json'), /'hidden_size' is missing/);
});


test('a pass at some rows gives the full pass\'s losses there, and the same gradients for a partial gradient map', async () => {
  const [B, T] = [2, 6];
  const { g, model, tokens, targets, tgts } = await setup(base, 11, B, T);
  const rows = [...tgts.keys()].filter((i) => tgts[i] !== IGNORE_INDEX);
  const idx = rowIndex(g, rows, B * T);
  const wanted = 'model.layers.1.mlp.down_proj.weight';
  const full = model.forward(tokens, targets);
  const part = model.forward(tokens, targets, undefined, { rows: idx });
  // Σ losses at the rows, the same objective for both passes.
  const ones = (n: number) => g.tensor(new Float32Array(n).fill(1), [1, n]);
  const dFull = g.tensor(Float32Array.from(tgts, (t) => (t === IGNORE_INDEX ? 0 : 1)), [B, T]);
  const dPart = ones(rows.length);
  const gFull = new Map([[wanted, g.zeros(model.params.get(wanted)!.shape)]]);
  const gPart = new Map([[wanted, g.zeros(model.params.get(wanted)!.shape)]]);
  full.backward(gFull, dFull);
  part.backward(gPart, dPart);
  const [lf, lp, wf, wp] = (await g.readMany([full.losses!, part.losses!, gFull.get(wanted)!, gPart.get(wanted)!])) as Float32Array[];
  close(Float32Array.from(rows, (i) => lf![i]!), lp!, 1e-6);
  close(wp!, wf!, 1e-5);
  assert.throws(() => model.forward(tokens, targets, undefined, { prefix: { at: { layer: 1, mlp: false }, tokens, x: dPart } }), /shared prefix/);
  assert.throws(() => model.forward(tokens, targets, undefined, { variants: 2 }), /batched variants are not supported/);
  for (const t of [full, part]) t.release();
  for (const t of [dFull, dPart, idx.idx, gFull.get(wanted)!, gPart.get(wanted)!, tokens, targets]) t.release();
  model.release();
});

test.run();
