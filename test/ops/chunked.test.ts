// Tensors over the storage-binding limit: a Gpu with a tiny injected limit (DeviceOptions.maxBinding)
// splits small tensors the way lavapipe's 128 MiB splits GPT-2 small's, and every op that splits
// must give what the unsplit op gives on a normal Gpu: the same bits where the order of sums is
// unchanged, else within f32 rounding.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { dawnGpu, optionsFromEnv } from '../../src/io/dawn.ts';
import type { F32 } from '../../src/gpu/tensor.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { Llama } from '../../src/model/llama.ts';
import type { LanguageModel } from '../../src/model/lm.ts';
import { generateTokens } from '../../src/model/generate.ts';
import { resolveMask } from '../../src/model/mask.ts';
import { EditWriter } from '../../src/seal/task.ts';
import { applyEdits, editBackward, maskBlock, type DenseEdit } from '../../src/ops/edit.ts';
import { embeddingBackward, embeddingForward } from '../../src/ops/embedding.ts';
import { lmHead, lmHeadBackward } from '../../src/ops/lmhead.ts';
import { convert } from '../../src/ops/convert.ts';
import { layernormForward } from '../../src/ops/layernorm.ts';
import { adamw, clipGradNorm } from '../../src/ops/optimizer.ts';
import { embedStep } from '../../src/ops/decode.ts';
import { close, rng, sameBits } from '../helpers.ts';

const LIMIT = 8192;
let plain: Gpu;
let split: Gpu;

test.before(async () => {
  plain = await dawnGpu(optionsFromEnv());
  split = await dawnGpu({ ...optionsFromEnv(), maxBinding: LIMIT });
});
test.after(() => {
  plain.destroy();
  split.destroy();
});

/** Runs `f` on both Gpus with the same host inputs; returns what each read back. */
async function both(f: (g: Gpu) => F32[] | Promise<F32[]>): Promise<[Float32Array[], Float32Array[]]> {
  const out: Float32Array[][] = [];
  for (const g of [plain, split]) {
    const ts = await f(g);
    out.push((await g.readMany(ts)) as Float32Array[]);
  }
  return [out[0]!, out[1]!];
}

// wte [100×48] is 19 200 bytes, over the 8 KiB limit: three vocabulary chunks of ≤ 40 rows.
const [V, C, B, T] = [100, 48, 3, 13];
const r = rng(3);
const wteData = r.uniformArray(V * C);
const wpeData = r.uniformArray(T * C);
// Ids at the chunk edges, repeated ones, and the last.
const ids = Uint32Array.from({ length: B * T }, (_, i) => [0, 39, 40, 79, 80, 99, 40][i % 7]! + (i > 20 ? r.int(20) : 0));

test('the split Gpu refuses to bind a tensor over its limit in an op that does not split', async () => {
  const x = split.tensor(r.uniformArray(V * C), [V, C]);
  const ones = split.tensor(new Float32Array(C).fill(1));
  assert.throws(() => layernormForward(split, x, ones, ones), /binding 1, .* is 19200 bytes, over the storage-binding limit of 8192 bytes/);
  x.release();
  ones.release();
});

test('embedding forward and backward over vocabulary chunks: the same bits', async () => {
  const dout = r.uniformArray(B * T * C);
  const dwte0 = r.uniformArray(V * C);
  const [a, b] = await both((g) => {
    const wte = g.tensor(wteData, [V, C]);
    const wpe = g.tensor(wpeData, [T, C]);
    const tokens = g.tensor(Uint32Array.from([...ids.subarray(0, B * T - 1), V]), [B, T]);
    const out = embeddingForward(g, tokens, wte, wpe);
    const dwte = g.tensor(dwte0, [V, C]);
    const dwpe = g.zeros([T, C]);
    embeddingBackward(g, g.tensor(dout, [B, T, C]), g.tensor(ids, [B, T]), dwte, dwpe);
    const step = embedStep(g, g.tensor(Uint32Array.from([99, 0, 41, V])), g.tensor(Uint32Array.from([0, 5, 12, 1])), wte, wpe);
    return [out, dwte, dwpe, step];
  });
  for (let i = 0; i < a.length; i++) sameBits(b[i]!, a[i]!, `output ${i}`);
  assert.ok(Number.isNaN(b[0]![(B * T - 1) * C]), 'an id ≥ V gives NaN');
  assert.ok(Number.isNaN(b[3]![3 * C]), 'embedStep: an id ≥ V gives NaN');
});

test('the tied LM head over row and vocabulary tiles: logits bit for bit, gradients within rounding', async () => {
  const N = 37; // logits [37×100] = 14 800 bytes: row chunks of 16 too
  const x = r.uniformArray(N * C);
  const dl = r.uniformArray(N * V);
  const dwte0 = r.uniformArray(V * C);
  const [a, b] = await both((g) => {
    const wte = g.tensor(wteData, [V, C]);
    const xt = g.tensor(x, [N, C]);
    const logits = lmHead(g, xt, wte);
    const dwte = g.tensor(dwte0, [V, C]);
    const dx = lmHeadBackward(g, xt, wte, g.tensor(dl, [N, V]), dwte);
    return [logits, dwte, dx];
  });
  sameBits(b[0]!, a[0]!, 'logits');
  close(b[1]!, a[1]!, 1e-5, 1e-5, 'dwte');
  close(b[2]!, a[2]!, 1e-5, 1e-5, 'dx');
});

test('the LM head backward with f16 weights splits by its f32 gradient', async () => {
  // wte [80×48] is 7 680 bytes in f16 (one binding) but its gradient 15 360 in f32 (two).
  const [Vh, N] = [80, 20];
  const x = r.uniformArray(N * C);
  const dl = r.uniformArray(N * Vh);
  const [a, b] = await both((g) => {
    const wte = convert(g, g.tensor(wteData.subarray(0, Vh * C), [Vh, C]), 'f16');
    const dwte = g.zeros([Vh, C]);
    const dx = lmHeadBackward(g, g.tensor(x, [N, C]), wte, g.tensor(dl, [N, Vh]), dwte);
    return [dwte, dx];
  });
  sameBits(b[0]!, a[0]!, 'dwte (the same sums)');
  close(b[1]!, a[1]!, 1e-5, 1e-5, 'dx (summed over two chunks)');
});

test('AdamW and gradient clipping over element chunks: the same bits', async () => {
  const n = 5000; // 20 000 bytes
  const data = [1, 2, 3, 4].map(() => r.uniformArray(n));
  const small = r.uniformArray(7);
  const [a, b] = await both((g) => {
    const [p, grad, m, v] = data.map((d) => g.tensor(d));
    const other = g.tensor(small);
    const norm = clipGradNorm(g, [grad!, other], 0.5);
    adamw(g, p!, grad!, m!, v!, 3, { lr: 1e-2 });
    return [norm, p!, grad!, m!, v!, other];
  });
  for (let i = 0; i < a.length; i++) sameBits(b[i]!, a[i]!, `output ${i}`);
});

test('dense edits and their gradient on a tensor over the limit: the same bits', async () => {
  const base = r.uniformArray(V * C);
  const dOut = r.uniformArray(V * C);
  // Rows 3..90 × columns 5..40 (runs longer than nothing, spans over the limit), then every element.
  const masks = [[maskBlock([V, C], [3, 90], [5, 40])], [maskBlock([V, C])]];
  const deltas = masks.map((m) => r.uniformArray(m[0]!.run * m[0]!.runs + 3));
  const [a, b] = await both((g) => {
    const out: F32[] = [];
    const bt = g.tensor(base, [V, C]);
    for (const [i, mask] of masks.entries()) {
      const edit: DenseEdit = { kind: 'dense', mask, delta: g.tensor(deltas[i]!), offset: 3, alpha: 0.5 };
      out.push(applyEdits(g, bt, [edit]), editBackward(g, g.tensor(dOut, [V, C]), edit));
    }
    return out;
  });
  for (let i = 0; i < a.length; i++) sameBits(b[i]!, a[i]!, `output ${i}`);
});

test('SEAL\'s edit writer with wte over the limit (R edits bound in pieces) and c_fc under it (one combine): the same bits', async () => {
  const config = { vocabSize: 257, nCtx: 16, nLayer: 1, nHead: 2, nEmbd: 16 };
  const spec = { kinds: ['grad', 'sign'] as const, lookahead: 0 };
  const out = await both(async (g) => {
    const model = GPT2.init(g, config, 3);
    const mask = resolveMask(new Map([...model.params].map(([k, t]) => [k, t.shape])), { tensors: ['wte.weight', 'h.0.mlp.c_fc.weight'] });
    const r = rng(8);
    const directions = mask.entries.map((e) => g.tensor(r.normalArray(2 * e.size), [2, e.size]));
    const writer = new EditWriter(model, mask, { ...spec, kinds: [...spec.kinds] });
    const f = { pooled: new Float32Array(16), directions, gram: [], norms: [], release: () => directions.forEach((d) => d.release()) };
    const edited = [...writer.apply(f, [0.5, -0.25, 1.5, 0.75]).values()].map((t) => convert(g, t, 'f32'));
    await g.sync();
    writer.release();
    f.release();
    model.release();
    return edited;
  });
  out[0].forEach((a, i) => sameBits(out[1][i]!, a, `edited tensor ${i}`));
});

/**
 * A model whose embedding (and logits) are over the limit, made on both Gpus from the same host
 * arrays: logits and loss bit for bit, the named gradients within rounding (chunked sums), the same
 * greedy tokens.
 */
async function splitModelMatches(make: (g: Gpu, arrays?: ReadonlyMap<string, Float32Array>) => LanguageModel, V: number, grads: readonly string[]) {
  const toks = Uint32Array.from({ length: 2 * 9 }, () => r.int(V));
  const tgts = Uint32Array.from({ length: 2 * 9 }, () => r.int(V));
  let arrays: Map<string, Float32Array> | null = null;
  const gens: number[][][] = [];
  const [a, b] = await both(async (g) => {
    if (!arrays) {
      const init = make(g);
      arrays = await init.toArrays();
      init.release();
    }
    const model = make(g, arrays);
    const pass = model.forward(g.tensor(toks, [2, 9]), g.tensor(tgts, [2, 9]));
    const gs = model.zerosLike();
    pass.backward(gs);
    gens.push((await generateTokens(model, [[1, 2, 3], [4]], { maxNew: 5 })).map((x) => x.tokens));
    return [pass.logits, pass.loss!, ...grads.map((n) => gs.get(n)!)];
  });
  sameBits(b[0]!, a[0]!, 'logits');
  sameBits(b[1]!, a[1]!, 'loss');
  grads.forEach((n, i) => close(b[2 + i]!, a[2 + i]!, 1e-4, 1e-6, n));
  assert.equal(gens[1], gens[0]);
}

test('GPT-2 with wte over the limit: logits and loss bit for bit, gradients within rounding, the same greedy tokens', async () => {
  // Only wte [320×16] (20 480 bytes) and the logits are over the limit.
  const config = { vocabSize: 320, nCtx: 16, nLayer: 1, nHead: 2, nEmbd: 16 };
  await splitModelMatches((g, arrays) => (arrays ? GPT2.fromArrays(g, config, arrays) : GPT2.init(g, config, 5)), 320, ['wte.weight', 'h.0.mlp.c_fc.weight']);
});

test('Llama with its embedding and untied head over the limit, f32 and f16: the same as unsplit', async () => {
  // embed_tokens and lm_head [320×16] are 20 480 bytes as f32 (10 240 as f16), over the 8 KiB limit.
  const c = { modelType: 'llama', vocabSize: 320, nCtx: 16, nLayer: 1, nEmbd: 16, nHead: 4, nKvHead: 2, headDim: 4, intermediate: 24, ropeTheta: 10000, ropeScaling: null, rmsEps: 1e-5, tied: false, qkvBias: false } as const;
  for (const dtype of ['f32', 'f16'] as const) {
    await splitModelMatches((g, arrays) => (arrays ? Llama.fromArrays(g, c, arrays, dtype) : Llama.init(g, c, 5)), 320, ['model.embed_tokens.weight', 'lm_head.weight', 'model.layers.0.mlp.up_proj.weight']);
  }
});

test.run();
