// `seal worker --queue URL`: a scoring worker for `seal train --workers URL` (src/scale/worker.ts).
// It loads the base model, hashes its file (a job for another model is refused), and takes jobs
// until SIGINT or SIGTERM; a job in hand when it is killed goes to another worker.
import { existsSync } from 'node:fs';
import { dawnGpu, type DawnOptions } from '../io/dawn.ts';
import { loadModel, modelFile } from '../model/load.ts';
import { checkQueue, fileHash } from '../scale/queue.ts';
import { ScoringWorker } from '../scale/worker.ts';
import { missingModel } from '../seal/run.ts';

export interface WorkerFlags {
  queue: string;
  model: string;
  lockMs: number;
  name?: string;
}

export async function workerCommand(dev: DawnOptions, o: WorkerFlags): Promise<void> {
  await checkQueue(o.queue);
  if (!existsSync(o.model)) throw missingModel(o.model);
  const modelHash = await fileHash(await modelFile(o.model));
  const gpu = await dawnGpu(dev);
  const { model, tokenizer } = await loadModel(gpu, o.model);
  const worker = new ScoringWorker(model, tokenizer, { url: o.queue, modelHash, lockMs: o.lockMs, ...(o.name ? { name: o.name } : {}), log: (l) => console.log(l) });
  const stop = () => void worker.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  console.log(`worker ${worker.name}: ready on ${o.queue} with ${o.model} (sha256 ${modelHash.slice(0, 16)}…) on ${gpu.summary.description || gpu.summary.device}`);
  try {
    await worker.run();
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    model.release();
    gpu.destroy();
  }
}
