// The learner's side of scale-out (`seal train --workers URL`): QueueTask is an EditTask whose
// scoring runs on workers (worker.ts) through the queue (queue.ts), one job per passage and round;
// the trainer does not know the difference. ScoringQueue adds the jobs, gathers their results in
// the learner's order (so a run with workers equals the single-process run bit for bit), and says
// what it waits for: a lost queue, no worker alive, a job a worker refused.
import { createHash } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { modelFile } from '../model/load.ts';
import type { SealConfig } from '../seal/config.ts';
import type { Generator } from '../seal/generator.ts';
import type { Policy } from '../seal/policy.ts';
import type { Passage } from '../tasks/squad.ts';
import { UserError } from '../util/errors.ts';
import {
  checkQueue,
  decodeResult,
  fileHash,
  encodeJson,
  jobId,
  policyKey,
  PROTOCOL,
  queueName,
  queueConnection,
  QueueUnreachableError,
  runKey,
  snapshotHash,
  type JobResult,
  type RunSpec,
  type ScoringJob,
} from './queue.ts';
import type { EditJob, EditOutcome, EditTask, MetaOutcome, Round } from '../seal/task.ts';

export interface QueueOptions {
  url: string;
  /** Where the workers found the base model, for messages (`seal worker --model`). */
  modelPath?: string;
  /** Stop when the queue has been unreachable this long. */
  queueTimeoutMs: number;
  /** Stop when jobs wait and no worker has been connected this long. */
  workerTimeoutMs: number;
  /** Status lines while waiting (lost queue, no worker). */
  status: (line: string) => void;
}

/** What the gathering cost, summed over rounds: the per-job overhead is (wall − worker) / jobs with one worker. */
export interface QueueStats {
  rounds: number;
  jobs: number;
  wallMs: number;
  workerMs: number;
  /** Bytes of job data sent and of results received. */
  sentBytes: number;
  receivedBytes: number;
  /** Results for a key already gathered (a job run twice), ignored. */
  duplicates: number;
  /** Jobs found with another policy or coefficients under their key, replaced. */
  stale: number;
  /** Jobs re-added because the queue had lost them. */
  resent: number;
}

const SWEEP_MS = 500;
/** Status lines repeat this often while the learner waits. */
const SAY_EVERY_MS = 5000;
const JOB_OPTS = {
  attempts: 5,
  backoff: { type: 'fixed', delay: 1000 },
  removeOnComplete: { age: 24 * 3600 },
  removeOnFail: { age: 24 * 3600 },
};

export class ScoringQueue {
  readonly url: string;
  readonly stats: QueueStats = { rounds: 0, jobs: 0, wallMs: 0, workerMs: 0, sentBytes: 0, receivedBytes: 0, duplicates: 0, stale: 0, resent: 0 };
  readonly #opts: QueueOptions;
  readonly #redis: Redis;
  readonly #eventsRedis: Redis;
  readonly #queue: Queue<ScoringJob>;
  readonly #events: QueueEvents;
  /** What a lost queue needs again: the run specs and the current policy of each run. */
  readonly #published = new Map<string, string>();

  /** The queue of one base model's workers. */
  readonly name: string;

  private constructor(opts: QueueOptions, modelHash: string) {
    this.url = opts.url;
    this.#opts = opts;
    this.name = queueName(modelHash);
    // Commands fail at once while the connection is down (the learner says so and waits); ioredis reconnects.
    this.#redis = queueConnection(opts.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 5000 });
    this.#eventsRedis = queueConnection(opts.url, { maxRetriesPerRequest: null });
    for (const r of [this.#redis, this.#eventsRedis]) r.on('error', () => {}); // surfaced by the commands that fail
    this.#queue = new Queue(this.name, { connection: this.#redis });
    this.#events = new QueueEvents(this.name, { connection: this.#eventsRedis });
    this.#queue.on('error', () => {});
    this.#events.on('error', () => {});
  }

  /** Connects to the queue of the workers of one base model, or fails within seconds with a QueueUnreachableError. */
  static async open(opts: QueueOptions, modelHash: string): Promise<ScoringQueue> {
    await checkQueue(opts.url);
    const q = new ScoringQueue(opts, modelHash);
    await Promise.all([q.#queue.waitUntilReady(), q.#events.waitUntilReady()]);
    return q;
  }

  async publishRun(run: string, spec: RunSpec): Promise<void> {
    this.#published.set(runKey(run), encodeJson(spec));
    await this.#redis.set(runKey(run), this.#published.get(runKey(run))!);
  }

  /** The policy snapshot jobs of `run` are drawn from now; workers skip jobs of any other. */
  async setPolicy(run: string, hash: string): Promise<void> {
    this.#published.set(policyKey(run), hash);
    await this.#retrying(() => this.#redis.set(policyKey(run), hash));
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#queue.close(), this.#events.close()]);
    this.#redis.disconnect();
    this.#eventsRedis.disconnect();
  }

  /** Runs `f` until the queue answers, saying how long it has been lost, or stops after queueTimeoutMs. */
  async #retrying<T>(f: () => Promise<T>): Promise<T> {
    let lostSince: number | null = null;
    let said = 0;
    for (;;) {
      try {
        const x = await f();
        if (lostSince !== null) this.#opts.status(`queue ${this.url} is back after ${((Date.now() - lostSince) / 1000).toFixed(0)} s; going on`);
        return x;
      } catch (e) {
        if (e instanceof UserError) throw e;
        const now = Date.now();
        lostSince ??= now;
        const left = this.#opts.queueTimeoutMs - (now - lostSince);
        if (left <= 0) throw new QueueUnreachableError(`lost the queue ${this.url} for ${(this.#opts.queueTimeoutMs / 1000).toFixed(0)} s (${(e as Error).message}); stopped. Continue with --resume once it is back`);
        if (now - said >= SAY_EVERY_MS) {
          this.#opts.status(`queue ${this.url} unreachable (${(e as Error).message}); waiting for it, stopping in ${(left / 1000).toFixed(0)} s`);
          said = now;
        }
        await sleep(Math.min(SWEEP_MS, left));
      }
    }
  }

  /** Adds the jobs (a no-op for keys already queued) and waits for all their results, in order. */
  async gather(jobs: readonly ScoringJob[]): Promise<JobResult[]> {
    const t0 = performance.now();
    const pending = new Map(jobs.map((j) => [jobId(j), j]));
    if (pending.size !== jobs.length) throw new Error('gather: two jobs share a key');
    const results = new Map<string, JobResult>();
    let wake = () => {};
    const onCompleted = ({ jobId: id, returnvalue }: { jobId: string; returnvalue: unknown }) => {
      if (this.#accept(pending, results, id, returnvalue)) wake();
    };
    this.#events.on('completed', onCompleted);
    let lastSweep = -Infinity;
    let noWorkerSince: number | null = null;
    let said = 0;
    try {
      await this.#retrying(() => this.#add([...pending.values()]));
      while (pending.size > 0) {
        if (performance.now() - lastSweep >= SWEEP_MS) {
          const workers = await this.#retrying(() => this.#sweep(pending, results));
          lastSweep = performance.now();
          if (pending.size === 0) break;
          noWorkerSince = workers > 0 ? null : (noWorkerSince ?? Date.now());
          if (noWorkerSince !== null) {
            const left = this.#opts.workerTimeoutMs - (Date.now() - noWorkerSince);
            if (left <= 0) throw new UserError(`no worker alive for this run's base model on ${this.url} for ${(this.#opts.workerTimeoutMs / 1000).toFixed(0)} s with ${pending.size} jobs waiting; stopped. Start workers with \`${this.#startWorker()}\`, then continue with --resume`);
            if (Date.now() - said >= SAY_EVERY_MS) {
              this.#opts.status(`no worker alive for this run's base model on ${this.url} (queue ${this.name}): ${pending.size} jobs wait. Start one with \`${this.#startWorker()}\` (stopping in ${(left / 1000).toFixed(0)} s)`);
              said = Date.now();
            }
          }
        }
        await new Promise<void>((res) => {
          wake = res;
          setTimeout(res, SWEEP_MS);
        });
      }
    } finally {
      this.#events.off('completed', onCompleted);
    }
    const out = jobs.map((j) => results.get(jobId(j))!);
    const s = this.stats;
    s.rounds++;
    s.jobs += jobs.length;
    s.wallMs += performance.now() - t0;
    s.workerMs += out.reduce((a, r) => a + r.ms, 0);
    s.sentBytes += jobs.reduce((a, j) => a + encodeJson(j).length, 0);
    return out;
  }

  #startWorker(): string {
    return `seal worker --queue ${this.url} --model ${this.#opts.modelPath ?? '<the run\'s model file>'}`;
  }

  /** Takes a result if its key is pending and it was computed for the pending job's policy. */
  #accept(pending: Map<string, ScoringJob>, results: Map<string, JobResult>, id: string, raw: unknown): boolean {
    const want = pending.get(id);
    if (!want) {
      if (results.has(id)) this.stats.duplicates++;
      return false;
    }
    if (typeof raw !== 'string') return false;
    const r = decodeResult(raw);
    if (r.policy !== want.policy || r.outcomes.length !== want.samples.length) return false;
    this.stats.receivedBytes += raw.length;
    results.set(id, r);
    pending.delete(id);
    return true;
  }

  async #add(jobs: readonly ScoringJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.#queue.addBulk(jobs.map((j) => ({ name: `${j.kind}/${j.op}`, data: j, opts: { jobId: jobId(j), ...JOB_OPTS } })));
  }

  /**
   * Looks at every pending job: takes finished results the events missed, re-adds jobs the queue
   * lost (after re-publishing what workers read), replaces a job left under the same key with other
   * data (an earlier attempt of the run), and stops on a job that failed for good. Returns how many
   * workers are connected.
   */
  async #sweep(pending: Map<string, ScoringJob>, results: Map<string, JobResult>): Promise<number> {
    const ids = [...pending.keys()];
    const found = await Promise.all(ids.map((id) => Job.fromId<ScoringJob>(this.#queue, id)));
    const missing: ScoringJob[] = [];
    for (const [i, job] of found.entries()) {
      const id = ids[i]!;
      const want = pending.get(id);
      // Gathered from its completion event while this sweep was reading.
      if (!want) continue;
      if (!job) {
        missing.push(want);
      } else if (encodeJson(job.data) !== encodeJson(want)) {
        // Active jobs keep their lock; a later sweep replaces them once they finish.
        if (job.finishedOn || !(await job.isActive())) {
          await job.remove();
          missing.push(want);
          this.stats.stale++;
        }
      } else if (job.finishedOn && job.failedReason) {
        throw new UserError(`job ${id} failed on a worker: ${job.failedReason}`);
      } else if (job.finishedOn) {
        this.#accept(pending, results, id, job.returnvalue);
      }
    }
    if (missing.length > 0) {
      for (const [k, v] of this.#published) await this.#redis.set(k, v);
      await this.#add(missing);
      this.stats.resent += missing.length;
    }
    return this.#queue.getWorkersCount();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface RemoteRun {
  id: string;
  /** sha256 of the base model file. */
  model: string;
}

/**
 * An EditTask whose rounds are scored by workers: the local task gives the passages' features (the
 * generator's input); score and gradients of a round go out as one job per passage. Without a round
 * (a call from outside the training loop) it scores locally.
 */
export class QueueTask implements EditTask {
  readonly #local: EditTask;
  readonly #queue: ScoringQueue;
  readonly #run: RemoteRun;
  readonly #policy: Policy;

  constructor(local: EditTask, queue: ScoringQueue, run: RemoteRun, policy: Policy) {
    this.#local = local;
    this.#queue = queue;
    this.#run = run;
    this.#policy = policy;
  }

  get size(): number {
    return this.#local.size;
  }

  get actionDim(): number {
    return this.#local.actionDim;
  }

  get featureDim(): number {
    return this.#local.featureDim;
  }

  pooled(p: number): Float32Array {
    return this.#local.pooled(p);
  }

  score(jobs: readonly EditJob[], round?: Round): Promise<EditOutcome[]> {
    return round ? this.#remote('score', jobs, round, 0) : this.#local.score(jobs);
  }

  gradients(jobs: readonly EditJob[], penalty: number, round?: Round): Promise<MetaOutcome[]> {
    return round ? (this.#remote('gradients', jobs, round, penalty) as Promise<MetaOutcome[]>) : this.#local.gradients(jobs, penalty);
  }

  async #remote(op: 'score' | 'gradients', jobs: readonly EditJob[], round: Round, penalty: number): Promise<(EditOutcome | MetaOutcome)[]> {
    const policy = snapshotHash(await this.#policy.toArrays());
    await this.#queue.setPolicy(this.#run.id, policy);
    // One queue job per passage: its edits in the order given, sample s the s-th of that passage.
    const byPassage = new Map<number, number[]>();
    jobs.forEach((j, i) => byPassage.set(j.p, [...(byPassage.get(j.p) ?? []), i]));
    const groups = [...byPassage];
    const queued: ScoringJob[] = groups.map(([p, idx]) => ({
      kind: 'variant-a',
      op,
      protocol: PROTOCOL,
      run: this.#run.id,
      iteration: round.iteration,
      passage: p,
      samples: idx.map((_, s) => s),
      coef: idx.map((i) => Array.from(jobs[i]!.coef)),
      penalty,
      model: this.#run.model,
      policy,
    }));
    const results = await this.#queue.gather(queued);
    const out: (EditOutcome | MetaOutcome)[] = new Array(jobs.length);
    groups.forEach(([, idx], k) => idx.forEach((i, s) => (out[i] = results[k]!.outcomes[s]!)));
    return out;
  }

  release(): void {
    this.#local.release();
  }
}

/** A learner connected to its base model's workers: the queue, the run as published, and the trainer's scoring. */
export interface Learner {
  queue: ScoringQueue;
  run: RemoteRun;
  scoring: (local: EditTask, generator: Generator) => EditTask;
}

/**
 * Opens the queue of the workers of `config.model` and publishes the run (its edit space and
 * training passages). The same run directory, config and model give the same run id when resumed,
 * so its jobs keep their keys.
 */
export async function connectLearner(opts: QueueOptions, runDir: string, config: SealConfig, passages: Passage[]): Promise<Learner> {
  const model = await fileHash(await modelFile(config.model));
  const queue = await ScoringQueue.open({ modelPath: config.model, ...opts }, model);
  const run = { id: `${basename(resolve(runDir)).replace(/[^\w-]/g, '_')}-${createHash('sha256').update(encodeJson(config) + model).digest('hex').slice(0, 12)}`, model };
  const { mask, featureLayer, directions, lookahead } = config;
  try {
    await queue.publishRun(run.id, { protocol: PROTOCOL, model, config: { mask, featureLayer, directions, lookahead }, passages });
  } catch (e) {
    await queue.close();
    throw e;
  }
  return { queue, run, scoring: (local, generator) => new QueueTask(local, queue, run, generator.policy) };
}
