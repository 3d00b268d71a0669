// The GPU GPT-2 against the CPU reference: logits, loss and every parameter's gradient.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { GPT2Config } from '../../src/model/config.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { IGNORE_INDEX } from '../../src/ops/crossentropy.ts';
import * as ref from '../../src/reference/gpt2.ts';
import { close, gpu, releaseGpu, rng, sameBits } from '../helpers.ts';
import { rowIndex } from '../../src/ops/rows.ts';

test.after(releaseGpu);

// Awkward on purpose: C not a multiple of 4, 3 heads, a prime vocabulary.
const config: GPT2Config = { vocabSize: 29, nCtx: 8, nLayer: 2, nHead: 3, nEmbd: 18 };

async function setup(seed: number, B: number, T: number) {
  const g = await gpu();
  const r = rng(seed);
  const model = GPT2.init(g, config, seed);
  // Perturb the init so biases and LayerNorm gains are not trivially 0/1.
  const arrays = await model.toArrays();
  for (const a of arrays.values()) for (let i = 0; i < a.length; i++) a[i]! += 0.1 * r.normal();
  model.release();
  const m = GPT2.fromArrays(g, config, arrays);
  const toks = Uint32Array.from({ length: B * T }, () => r.int(config.vocabSize));
  const tgts = Uint32Array.from({ length: B * T }, (_, i) => (i % 5 === 2 ? IGNORE_INDEX : r.int(config.vocabSize)));
  const cpuParams = new Map([...arrays].map(([k, v]) => [k, Float64Array.from(v)]));
  return { g, m, toks, tgts, cpuParams, tokens: g.tensor(toks, [B, T]), targets: g.tensor(tgts, [B, T]) };
}

test('forward logits and loss match the CPU reference', async () => {
  const [B, T] = [2, 7];
  const { g, m, toks, tgts, cpuParams, tokens, targets } = await setup(11, B, T);
  const pass = m.forward(tokens, targets);
  const [logits, loss] = await g.readMany([pass.logits, pass.loss!]);
  const want = ref.forward(config, cpuParams, toks, tgts, B, T);
  close(logits!, want.logits, 1e-4, 1e-4, 'logits');
  close(loss!, [want.loss], 1e-5, 1e-5, 'loss');
  pass.release();
  m.release();
  tokens.release();
  targets.release();
});

test('backward matches the reference gradient of every parameter', async () => {
  const [B, T] = [2, 5];
  const { g, m, toks, tgts, cpuParams, tokens, targets } = await setup(12, B, T);
  const grads = m.zerosLike();
  const pass = m.forward(tokens, targets);
  pass.backward(grads);
  const names = [...grads.keys()];
  const got = await g.readMany(names.map((n) => grads.get(n)!));
  const want = ref.forward(config, cpuParams, toks, tgts, B, T).backward();
  names.forEach((n, i) => close(got[i]!, want.get(n)!, 1e-3, 1e-5, `d ${n}`));
  pass.release();
  for (const t of grads.values()) t.release();
  m.release();
  tokens.release();
  targets.release();
});

test('a forward and backward leak nothing', async () => {
  const [B, T] = [1, 4];
  const { g, m, tokens, targets } = await setup(13, B, T);
  const live = g.liveTensors;
  const grads = m.zerosLike();
  const pass = m.forward(tokens, targets);
  pass.backward(grads);
  await g.sync();
  pass.release();
  for (const t of grads.values()) t.release();
  assert.is(g.liveTensors, live, `leaked: ${g.liveLabels().slice(-10).join(', ')}`);
  m.release();
});

test('bad inputs are named', async () => {
  const g = await gpu();
  const m = GPT2.init(g, config, 1);
  assert.throws(() => m.forward(g.tensor(new Uint32Array(9), [1, 9])), /T = 9 is longer than the context \(8\)/);
  assert.throws(() => m.forward(g.tensor(new Uint32Array(4), [1, 4]), g.tensor(new Uint32Array(3), [1, 3])), /targets .* must match tokens/);
  const arrays = await m.toArrays();
  arrays.delete('h.1.mlp.c_fc.bias');
  assert.throws(() => GPT2.fromArrays(g, config, arrays), /missing parameter h\.1\.mlp\.c_fc\.bias/);
  m.release();
});


test('a pass from a shared prefix, differentiating only some tensors, gives the full pass\'s bits', async () => {
  const [B, T] = [3, 6];
  const { g, m, tokens, targets } = await setup(5, B, T);
  const live = g.liveTensors;
  const names = ['h.0.mlp.c_fc.weight', 'h.1.mlp.c_proj.weight', 'h.1.attn.c_attn.bias'];
  // Edited copies of the tensors, as SEAL overrides them.
  const overrides = new Map(names.map((n) => [n, g.tensor(rng(7).normalArray(m.params.get(n)!.size, 0.1), m.params.get(n)!.shape)]));
  const at = m.prefixPoint(names)!;
  assert.equal(at, { layer: 0, mlp: true });
  assert.is(m.prefixPoint(['wte.weight']), null);
  assert.equal(m.prefixPoint(['ln_f.bias']), { layer: 2, mlp: false });
  const full = m.forward(tokens, targets, overrides);
  const fullGrads = m.zerosLike();
  full.backward(fullGrads);
  const prefix = m.prefix(tokens, at);
  const part = m.forward(tokens, targets, overrides, { prefix });
  const partGrads = new Map(names.map((n) => [n, g.zeros(m.params.get(n)!.shape)]));
  part.backward(partGrads);
  const [a, b, ...gs] = await g.readMany([full.losses!, part.losses!, ...names.map((n) => fullGrads.get(n)!), ...names.map((n) => partGrads.get(n)!)]);
  sameBits(b as Float32Array, a as Float32Array, 'losses');
  names.forEach((n, i) => sameBits(gs[names.length + i] as Float32Array, gs[i] as Float32Array, n));
  const below = g.zeros(m.params.get('h.0.attn.c_proj.weight')!.shape);
  assert.throws(() => part.backward(new Map([['h.0.attn.c_proj.weight', below]])), /below where this pass's prefix starts/);
  below.release();
  assert.throws(() => m.forward(tokens, targets, new Map([['h.0.ln_1.bias', m.params.get('h.0.ln_1.bias')!]]), { prefix }), /h.0.ln_1.bias is overridden below the prefix/);
  for (const t of [...overrides.values(), ...fullGrads.values(), ...partGrads.values(), prefix.x]) t.release();
  full.release();
  part.release();
  assert.is(g.liveTensors, live, 'nothing leaks');
  for (const t of [tokens, targets]) t.release();
  m.release();
});

test('a pass of G variants (stacked per-variant weights) gives each variant\'s own pass, bit for bit', async () => {
  const [B, T, G] = [2, 7, 3];
  const { g, m, tgts, tokens, targets } = await setup(11, B, T);
  const rows = [...tgts.keys()].filter((i) => tgts[i] !== IGNORE_INDEX);
  const ix = rowIndex(g, rows, B * T);
  const r = rng(3);
  // Per variant: its own MLP and layer-1 qkv weights (variant 0 the base's), one shared ln_f override.
  const names = ['h.0.mlp.c_fc.weight', 'h.1.attn.c_attn.weight', 'h.1.mlp.c_proj.weight'];
  const copies = names.map((n) => Array.from({ length: G }, (_, v) => Float32Array.from(r.normalArray(m.params.get(n)!.size), (x) => (v === 0 ? 0 : 0.05 * x))));
  const base = await m.toArrays();
  const edited = (v: number) => new Map(names.map((n, k) => [n, g.tensor(base.get(n)!.map((w, i) => w + copies[k]![v]![i]!), m.params.get(n)!.shape)]));
  const lnf = g.tensor(base.get('ln_f.weight')!.map((w) => w * 1.5), m.params.get('ln_f.weight')!.shape);
  const singles = Array.from({ length: G }, (_, v) => new Map([...edited(v), ['ln_f.weight', lnf]]));
  const stacked = new Map(names.map((n) => [n, g.tensor(concatArrays(Array.from({ length: G }, (_, v) => base.get(n)!.map((w, i) => w + copies[names.indexOf(n)]![v]![i]!))), [G, ...m.params.get(n)!.shape])]));
  stacked.set('ln_f.weight', lnf);
  for (const opts of [{}, { rows: ix }, { rows: ix, prefix: m.prefix(tokens, { layer: 0, mlp: true }) }]) {
    const one = singles.map((o) => m.forward(tokens, targets, o, opts));
    const all = m.forward(tokens, targets, stacked, { ...opts, variants: G });
    const n = opts.rows ? rows.length : B * T;
    assert.equal(all.losses!.size, G * n);
    const [got, ...want] = (await g.readMany([all.losses!, ...one.map((p) => p.losses!)])) as Float32Array[];
    want.forEach((w, v) => sameBits(got!.subarray(v * n, (v + 1) * n), w, `variant ${v} losses`));
    assert.throws(() => all.backward(new Map()), /forward only/);
    for (const p of [all, ...one]) p.release();
    if ('prefix' in opts) opts.prefix?.x.release();
  }
  assert.throws(() => m.forward(tokens, targets, new Map([['ln_f.weight', g.zeros([2, config.nEmbd])]]), { variants: 2 }), /override ln_f.weight is \[2,18\], not \[18\]$/);
  assert.throws(() => m.forward(tokens, targets, stacked, { variants: 2 }), /h.0.mlp.c_fc.weight is \[3,18,72\], not \[18,72\] or \[2,18,72\] \(one per variant\)$/);
  for (const t of [...singles.flatMap((o) => [...o.values()].filter((x) => x !== lnf)), ...stacked.values(), ix.idx, tokens, targets]) t.release();
  m.release();
});

const concatArrays = (xs: Float32Array[]) => {
  const out = new Float32Array(xs.reduce((s, x) => s + x.length, 0));
  xs.reduce((at, x) => (out.set(x, at), at + x.length), 0);
  return out;
};

test('a pass that runs its top at the loss rows only gives the full pass\'s losses and gradients, bit for bit', async () => {
  const [B, T] = [3, 6];
  const { g, m, tgts, tokens, targets } = await setup(9, B, T);
  const rows = [...tgts.keys()].filter((i) => tgts[i] !== IGNORE_INDEX);
  const ix = rowIndex(g, rows, B * T);
  const r = rng(2);
  const weights = r.uniformArray(B * T).map((v, i) => (tgts[i] === IGNORE_INDEX ? 0 : v));
  const wFull = g.tensor(weights, [B, T]);
  const wRows = g.tensor(Float32Array.from(rows, (i) => weights[i]!), [1, rows.length]);
  // Every parameter below and above the gathered rows, the embedding included.
  const full = m.forward(tokens, targets);
  const fg = m.zerosLike();
  full.backward(fg, wFull);
  for (const prefix of [undefined, m.prefix(tokens, { layer: 1, mlp: true }), m.prefix(tokens, { layer: 2, mlp: false })]) {
    const part = m.forward(tokens, targets, undefined, { rows: ix, ...(prefix ? { prefix } : {}) });
    assert.equal(part.logits.shape, [1, rows.length, config.vocabSize]);
    const names = prefix ? [...m.params.keys()].filter((n) => (prefix.at.layer === 2 ? n.startsWith('ln_f') : n.startsWith('h.1.mlp') || n.startsWith('h.1.ln_2'))) : [...m.params.keys()];
    const pg = new Map(names.map((n) => [n, g.zeros(m.params.get(n)!.shape)]));
    part.backward(pg, wRows);
    const [lf, lp] = (await g.readMany([full.losses!, part.losses!])) as Float32Array[];
    sameBits(lp!, Float32Array.from(rows, (i) => lf![i]!), 'losses at the rows');
    for (const n of names) sameBits(await g.read(pg.get(n)!), await g.read(fg.get(n)!), n);
    for (const t of [...pg.values(), ...(prefix ? [prefix.x] : [])]) t.release();
    part.release();
  }
  for (const t of [...fg.values(), ix.idx, wFull, wRows, tokens, targets]) t.release();
  full.release();
  m.release();
});

test.run();
