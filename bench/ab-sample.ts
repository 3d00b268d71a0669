// PPO's sampling per iteration (the trainer's `ms.sample`: contexts, the policy, the noise, the
// actions' readback) and the whole iteration, an older checkout's SealTrainer against this one's,
// interleaved in one process (10 iterations a side per round). A synthetic task scores instantly,
// so only the trainer's own work is timed: P passages of F features, K = 8, B 16 × G 8.
//
// Run: node --import tsx bench/ab-sample.ts runs/base [F] [rounds]   (runs/base: `git archive <commit> src shaders | tar -x -C runs/base`)
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [baseDir, fArg, roundsArg] = process.argv.slice(2);
if (!baseDir) throw new Error('usage: bench/ab-sample.ts <folder with the older src/ and shaders/> [F] [rounds]');
const F = Number(fArg ?? 768);
const rounds = Number(roundsArg ?? 6);
const [P, K] = [64, 8];
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const load = (root: string, path: string): Promise<Any> => import(pathToFileURL(resolve(root, path)).href);

async function side(root: string) {
  const { Rng } = await load(root, 'src/util/random.ts');
  const task = (seed: number) => {
    const rng = new Rng(seed);
    const rows: Float32Array[] = Array.from({ length: P }, () => rng.normalArray(F));
    const outcome = (coef: ArrayLike<number>) => ({ improvement: -Math.hypot(...Array.from(coef)), measured: 0, norm: 0 });
    return { size: P, actionDim: K, featureDim: F, pooled: (p: number) => rows[p]!, score: async (jobs: { coef: ArrayLike<number> }[]) => jobs.map((j) => outcome(j.coef)), release() {} };
  };
  const gpu = await (await load(root, 'src/io/dawn.ts')).dawnGpu();
  const config = (await load(root, 'src/seal/config.ts')).resolveConfig({ algo: 'ppo', batch: 16, group: 8, epochs: 1, iterations: 1e6, evalEvery: 1e6 });
  const { Generator } = await load(root, 'src/seal/generator.ts');
  const generator = Generator.create(gpu, Generator.policyConfig(config, F, K), 1);
  const trainer = new (await load(root, 'src/seal/trainer.ts')).SealTrainer({ config, train: task(1), validation: task(2), generator });
  for (let i = 0; i < 5; i++) await trainer.step(); // pipelines compiled
  return { name: root === '.' ? 'this checkout' : root, gpu, trainer, sample: [] as number[], total: [] as number[] };
}

const sides = [await side(baseDir), await side('.')];
for (let r = 0; r < rounds; r++) {
  for (const s of sides) {
    for (let i = 0; i < 10; i++) {
      const { ms } = await s.trainer.step();
      s.sample.push(ms.sample);
      s.total.push(ms.total);
    }
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
for (const s of sides) console.log(`${s.name}: sample ${median(s.sample).toFixed(1)} ms, iteration ${median(s.total).toFixed(1)} ms (medians of ${s.sample.length})`);
const [a, b] = sides;
console.log(`before/after: sample ${(median(a!.sample) / median(b!.sample)).toFixed(2)}×, iteration ${(median(a!.total) / median(b!.total)).toFixed(2)}×`);
for (const s of sides) {
  s.trainer.release();
  s.gpu.destroy();
}
