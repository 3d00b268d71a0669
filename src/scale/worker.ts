// A scoring worker (`seal worker --queue URL`): holds one base model on its GPU and takes scoring jobs
// from the queue (queue.ts), one at a time. BullMQ renews the job's lock every lockMs/2 from this
// process's event loop (GPU work here awaits its readbacks, so the loop keeps turning during long
// jobs); a worker that dies stops renewing, and after lockMs another worker's stalled-job check puts
// the job back in the queue. It listens on its model's queue only (queue.ts); a job for another
// base model that reaches it anyway is refused with a ModelMismatchError.
import { hostname } from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Tokenizer } from '../io/tokenizer.ts';
import type { LanguageModel } from '../model/lm.ts';
import { decodeJson, encodeJson, policyKey, PROTOCOL, queueConnection, queueName, runKey, type JobResult, type RunSpec, type ScoringJob, type VariantAJob } from './queue.ts';
import { editSpace, QATask } from '../seal/task.ts';

export class ModelMismatchError extends UnrecoverableError {
  override name = 'ModelMismatchError';
}

export interface WorkerOptions {
  url: string;
  /** sha256 of the model file this worker loaded. */
  modelHash: string;
  /** How long a job's lock lasts without renewal: how soon a dead worker's job is retried. */
  lockMs: number;
  name?: string;
  log?: (line: string) => void;
}

/** One run's tasks, one passage each, built on first use (features are the costly part). */
class RunTasks {
  readonly run: string;
  readonly #spec: RunSpec;
  readonly #tasks = new Map<number, QATask>();

  constructor(run: string, spec: RunSpec) {
    this.run = run;
    this.#spec = spec;
  }

  async task(model: LanguageModel, tok: Tokenizer, p: number): Promise<QATask> {
    let t = this.#tasks.get(p);
    if (!t) {
      const passage = this.#spec.passages[p];
      if (!passage) throw new UnrecoverableError(`run ${this.run} has no passage ${p} (${this.#spec.passages.length} published)`);
      const { mask, layer, spec } = editSpace(model, this.#spec.config);
      t = await QATask.create(model, tok, [passage], mask, spec, layer);
      this.#tasks.set(p, t);
    }
    return t;
  }

  release(): void {
    for (const t of this.#tasks.values()) t.release();
  }
}

export class ScoringWorker {
  readonly name: string;
  readonly #model: LanguageModel;
  readonly #tok: Tokenizer;
  readonly #opts: WorkerOptions;
  readonly #redis: Redis;
  readonly #worker: Worker;
  #tasks: RunTasks | null = null;

  constructor(model: LanguageModel, tok: Tokenizer, opts: WorkerOptions) {
    this.#model = model;
    this.#tok = tok;
    this.#opts = opts;
    this.name = opts.name ?? `${hostname()}:${process.pid}`;
    // Workers wait out a lost connection (BullMQ needs maxRetriesPerRequest: null to block for jobs).
    this.#redis = queueConnection(opts.url, { maxRetriesPerRequest: null });
    this.#worker = new Worker(queueName(opts.modelHash), (job: Job<ScoringJob>) => this.#process(job), {
      connection: this.#redis,
      concurrency: 1,
      lockDuration: opts.lockMs,
      stalledInterval: Math.max(500, Math.round(opts.lockMs / 2)),
      // A job whose worker died goes back to the queue this many times before it fails.
      maxStalledCount: 5,
      name: this.name,
      autorun: false,
    });
    this.#worker.on('error', (e) => this.#log(`queue error: ${e.message}`));
  }

  #log(line: string): void {
    this.#opts.log?.(`worker ${this.name}: ${line}`);
  }

  /** Takes jobs until close() is called. */
  run(): Promise<void> {
    return this.#worker.run();
  }

  async close(): Promise<void> {
    await this.#worker.close();
    this.#redis.disconnect();
    this.#tasks?.release();
  }

  async #process(job: Job<ScoringJob>): Promise<string> {
    const t0 = performance.now();
    const data = job.data;
    this.#log(`job ${job.id} started`);
    if (data.protocol !== PROTOCOL) throw new UnrecoverableError(`job ${job.id} speaks protocol ${data.protocol}; this worker speaks ${PROTOCOL} (update one of them)`);
    if (data.model !== this.#opts.modelHash) {
      throw new ModelMismatchError(
        `ModelMismatchError: worker ${this.name} refuses job ${job.id}: its base model file has sha256 ${this.#opts.modelHash.slice(0, 16)}…, the run's has ${data.model.slice(0, 16)}… (start it with the run's --model)`,
      );
    }
    // A job from a superseded attempt (its policy is no longer the learner's) is not worth a GPU pass.
    const current = await this.#redis.get(policyKey(data.run));
    if (current !== data.policy) {
      this.#log(`job ${job.id} is stale (policy ${data.policy.slice(0, 12)}…, the run's is ${current?.slice(0, 12) ?? 'unpublished'}…): skipped`);
      return encodeJson({ worker: this.name, policy: data.policy, ms: 0, outcomes: [], stale: true });
    }
    const outcomes = await this.#variantA(data);
    const result: JobResult = { worker: this.name, policy: data.policy, ms: performance.now() - t0, outcomes };
    this.#log(`job ${job.id} done in ${result.ms.toFixed(0)} ms`);
    return encodeJson(result);
  }

  async #variantA(data: VariantAJob): Promise<JobResult['outcomes']> {
    if (this.#tasks?.run !== data.run) {
      const raw = await this.#redis.get(runKey(data.run));
      // The learner publishes the run before its first job; missing means the queue lost it: retry.
      if (!raw) throw new Error(`run ${data.run} is not published on the queue`);
      this.#tasks?.release();
      this.#tasks = new RunTasks(data.run, decodeJson<RunSpec>(raw));
    }
    const task = await this.#tasks.task(this.#model, this.#tok, data.passage);
    const jobs = data.coef.map((c) => ({ p: 0, coef: Float32Array.from(c) }));
    return data.op === 'score' ? task.score(jobs) : task.gradients(jobs, data.penalty);
  }
}
