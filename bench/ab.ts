// Before/after in one process, interleaved (a burst of load hits both sides alike): SEAL's scoring
// as a demo iteration does it, PPO/ReST-EM's scoring of G = 4 sampled edits per passage, and a
// pretraining step, with an older checkout's code against this
// one's. The older code comes from a folder holding its src/ and shaders/, e.g. the commit before a
// change: `git archive <commit> src shaders | tar -x -C runs/base`.
//
// Run: node --import tsx bench/ab.ts runs/base [rounds] [--step]   (--step: the pretraining step only)
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readLines } from '../src/seal/run.ts';
import { resolveConfig } from '../src/seal/config.ts';
import { sampleLines } from '../src/tasks/forgetting.ts';
import { loadSquad } from '../src/tasks/squad.ts';
import { Rng } from '../src/util/random.ts';

const args = process.argv.slice(2);
const stepOnly = args.includes('--step');
const [baseDir, roundsArg] = args.filter((a) => a !== '--step');
if (!baseDir) throw new Error('usage: bench/ab.ts <folder with the older src/ and shaders/> [rounds] [--step]');
const rounds = Number(roundsArg ?? 5);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const load = (root: string, path: string): Promise<Any> => import(pathToFileURL(resolve(root, path)).href);
/** The device: older checkouts have Gpu.create(), newer ones io/dawn.ts. */
async function device(root: string): Promise<Any> {
  try {
    return (await load(root, 'src/io/dawn.ts')).dawnGpu();
  } catch {
    return (await load(root, 'src/gpu/gpu.ts')).Gpu.create();
  }
}

const c = resolveConfig({ lookahead: 6 });
const train = (await loadSquad(c.data.train)).slice(0, c.batch);
const val = (await loadSquad(c.data.validation)).slice(0, c.validationCount);
const general = sampleLines(await readLines(c.data.general), c.forgettingLines, c.seed);

async function side(root: string) {
  const gpu = await device(root);
  const scoring = stepOnly ? undefined : await scorers(root, gpu);
  // The bundled config's pretraining step: width 128, 2 layers, 4 heads, batch 8 × 128.
  const M = await load(root, 'src/model/gpt2.ts');
  const O = await load(root, 'src/model/optimize.ts');
  const pre = M.GPT2.init(gpu, { vocabSize: 257, nCtx: 128, nLayer: 2, nHead: 4, nEmbd: 128 }, 1);
  const r = new Rng(2);
  const ids = () => Uint32Array.from({ length: 8 * 128 }, () => r.int(257));
  const [tokens, targets] = [gpu.tensor(ids(), [8, 128]), gpu.tensor(ids(), [8, 128])];
  const opt = new O.Optimizer(pre, O.DEFAULT_OPTIMIZE);
  return {
    gpu,
    ...scoring,
    step: () => opt.update(tokens, targets),
    release() {
      for (const x of [...Object.values(scoring ?? {}), pre]) x.release?.();
      gpu.destroy();
    },
  };
}

/** SEAL's scoring on the demo's model: a training batch, the validation split, the forgetting probe. */
async function scorers(root: string, gpu: Any) {
  const { model, tokenizer } = await (await load(root, 'src/model/load.ts')).loadModel(gpu, c.model);
  const T = await load(root, 'src/seal/task.ts');
  const { mask, layer, spec } = T.editSpace(model, c);
  const tr = await T.QATask.create(model, tokenizer, train, mask, spec, layer);
  const va = await T.QATask.create(model, tokenizer, val, mask, spec, layer);
  const probe = await (await load(root, 'src/tasks/forgetting.ts')).ForgettingProbe.create(model, tokenizer, general);
  return { model, tr, va, probe };
}

const sides = { before: await side(baseDir), after: await side('.') };
const K = sides.after.tr?.actionDim ?? 0;
const coef = (p: number) => Float32Array.from({ length: K }, (_, i) => 0.5 + 0.1 * Math.sin(p + i));
const gradJobs = train.map((_, p) => ({ p, coef: coef(p) }));
const valJobs = val.map((_, p) => ({ p, coef: coef(p) }));
const groupJobs = train.flatMap((_, p) => [0, 1, 2, 3].map((g) => ({ p, coef: coef(p + 7 * g) })));
const parts = stepOnly ? (['step'] as const) : (['grad', 'validation', 'groups', 'step'] as const);
const times = Object.fromEntries(['before', 'after'].map((s) => [s, Object.fromEntries(parts.map((k) => [k, [] as number[]]))])) as Record<'before' | 'after', Record<(typeof parts)[number], number[]>>;
const outs: Record<string, Any> = {};
for (let r = 0; r <= rounds; r++) {
  for (const name of (r % 2 ? ['after', 'before'] : ['before', 'after']) as ('before' | 'after')[]) {
    const s = sides[name];
    const t: Record<string, number> = {};
    let t0 = performance.now();
    const o: Record<string, Any> = {};
    if (s.tr) {
      o.g = await s.tr.gradients(gradJobs, c.penalty);
      t.grad = performance.now() - t0;
      t0 = performance.now();
      o.v = await s.va.score(valJobs);
      // As the trainer measures forgetting: batched where the task can (QATask.forgetting), else one edit at a time.
      o.forget = s.va.forgetting ? await s.va.forgetting(s.probe, valJobs.slice(0, 4)) : [];
      if (!s.va.forgetting) for (const j of valJobs.slice(0, 4)) o.forget.push(await s.probe.measure(s.va.apply(j)));
      t.validation = performance.now() - t0;
      t0 = performance.now();
      o.gr = await s.tr.score(groupJobs);
      t.groups = performance.now() - t0;
      t0 = performance.now();
    }
    o.loss = (await s.step()).loss;
    t.step = performance.now() - t0;
    if (r > 0) for (const k of parts) times[name][k].push(t[k]!); // round 0 warms up
    outs[name] = o;
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const [b, a] = [outs.before, outs.after];
const maxDiff = (x: number[], y: number[]) => Math.max(...x.map((v, i) => Math.abs(v - y[i]!)));
const lossEq = `pretraining loss ${b.loss === a.loss ? 'same bits' : `${b.loss} vs ${a.loss}`}`;
if (stepOnly) console.log(`equality: ${lossEq}`);
else console.log(`equality: rewards (meta) max |Δ| ${maxDiff(b.g.map((o: Any) => o.improvement), a.g.map((o: Any) => o.improvement))}, rewards (validation) ${maxDiff(b.v.map((o: Any) => o.improvement), a.v.map((o: Any) => o.improvement))}, rewards (groups) ${maxDiff(b.gr.map((o: Any) => o.improvement), a.gr.map((o: Any) => o.improvement))}, forgetting ${maxDiff(b.forget, a.forget)}, dL/dcoef max relative ${Math.max(...b.g.flatMap((o: Any, i: number) => Array.from(o.grad as Float64Array, (x, k) => Math.abs(x - a.g[i].grad[k]) / (Math.abs(x) + 1e-6)))).toExponential(2)}, ${lossEq}`);
for (const k of parts) {
  console.log(`${k.padEnd(10)} before ${med(times.before[k]).toFixed(0).padStart(6)} ms, after ${med(times.after[k]).toFixed(0).padStart(6)} ms: ${(med(times.before[k]) / med(times.after[k])).toFixed(2)}x  (medians of ${rounds}; before ${times.before[k].map((x) => x.toFixed(0))}; after ${times.after[k].map((x) => x.toFixed(0))})`);
}
// A demo iteration scores its batch every iteration and the validation split every evalEvery-th (5 in the demo).
const it = (s: 'before' | 'after') => med(times[s].grad) + med(times[s].validation) / 5;
if (!stepOnly) console.log(`demo iteration's scoring (meta + validation / 5): before ${it('before').toFixed(0)} ms, after ${it('after').toFixed(0)} ms: ${(it('before') / it('after')).toFixed(2)}x`);
console.log(`pretraining step tokens/s: before ${((8 * 128) / med(times.before.step) * 1000).toFixed(0)}, after ${((8 * 128) / med(times.after.step) * 1000).toFixed(0)}: ${(med(times.before.step) / med(times.after.step)).toFixed(2)}x`);
for (const s of Object.values(sides)) s.release();
