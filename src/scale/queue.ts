// What the learner (`seal train --workers`) and the workers (`seal worker`) share: the job engine
// (BullMQ on Redis), the job and result shapes, the keys, and the content hashes that tie a job to
// one base model and one policy snapshot. docs/scale-out.md explains the choice of engine.
//
// A job is one passage's edits of one iteration: (run, iteration, passage, samples) is its key and
// its BullMQ job id, so adding it twice is a no-op and a retried job overwrites nothing. It carries
// the K coefficients of each edit (not a seed to redraw them from): the worker then scores exactly
// the action the learner updates on, whatever its GPU, and the learner's sampling stays as it is.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { Passage } from '../tasks/squad.ts';
import { UserError } from '../util/errors.ts';
import type { SealConfig } from '../seal/config.ts';
import type { EditOutcome, MetaOutcome } from '../seal/task.ts';

/**
 * One queue per base model: a worker takes only jobs of the model file it loaded, so workers for
 * several models (or a stray one with an old file) can share one Redis without taking each other's
 * jobs. A job still names its model, and a worker refuses a job for another (ModelMismatchError).
 */
export const queueName = (modelHash: string) => `seal-scoring-${modelHash.slice(0, 16)}`;
/** Bumped when a job's or a result's shape changes: a worker refuses jobs of another version. */
export const PROTOCOL = 1;

/**
 * Variant A (parametric edits): score the edits, or (meta-gradient) also d(post-edit loss)/d(coef).
 * A variant-B job (passage, self-edit text → reward) is another member of this union with its own
 * handler in worker.ts; the key, the gathering and the checks stay as they are.
 */
export interface VariantAJob {
  kind: 'variant-a';
  op: 'score' | 'gradients';
  protocol: number;
  run: string;
  iteration: number;
  /** Index into the run's training passages. */
  passage: number;
  /** The edits' sample indices within the passage's group this iteration. */
  samples: number[];
  /** One coefficient vector (K f32 values, as numbers) per sample. */
  coef: number[][];
  penalty: number;
  /** sha256 of the base model file the run edits. */
  model: string;
  /** Content hash of the policy snapshot that drew the coefficients. */
  policy: string;
}

export type ScoringJob = VariantAJob;

export interface JobResult {
  worker: string;
  policy: string;
  /** Time inside the worker's processor. */
  ms: number;
  outcomes: (EditOutcome | MetaOutcome)[];
}

/** What a worker needs to build a run's task: the edit space and the passages, published by the learner. */
export interface RunSpec {
  protocol: number;
  model: string;
  config: Pick<SealConfig, 'mask' | 'featureLayer' | 'directions' | 'lookahead'>;
  passages: Passage[];
}

export const jobId = (j: Pick<ScoringJob, 'run' | 'iteration' | 'passage' | 'samples'>) =>
  `${j.run}.${j.iteration}.${j.passage}.${j.samples[0]}-${j.samples[j.samples.length - 1]}`;
export const runKey = (run: string) => `seal:run:${run}`;
/** The policy snapshot the learner scores with now: a job carrying another one is stale. */
export const policyKey = (run: string) => `seal:run:${run}:policy`;

export class QueueUnreachableError extends UserError {
  override name = 'QueueUnreachableError';
}

/** Redis connection options from a redis:// URL; anything else is a user error. */
export function queueConnection(url: string, extra: RedisOptions = {}): Redis {
  if (!/^rediss?:\/\//.test(url)) throw new UserError(`queue URL ${JSON.stringify(url)}: expected redis://host:port (or rediss:// for TLS)`);
  return new Redis(url, { lazyConnect: true, ...extra });
}

/** Connects once, within `timeoutMs`, or throws a QueueUnreachableError naming the URL and the cause. */
export async function checkQueue(url: string, timeoutMs = 5000): Promise<void> {
  const r = queueConnection(url, { connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  // The socket's error (ECONNREFUSED, ENOTFOUND) says more than the rejection ("Connection is closed").
  let cause: Error | undefined;
  r.on('error', (e: Error) => (cause ??= e));
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    throw new QueueUnreachableError(`cannot reach the queue at ${url}: ${(cause ?? (e as Error)).message} (is redis-server running there? docs/scale-out.md)`);
  } finally {
    r.disconnect();
  }
}

export async function fileHash(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** A policy snapshot's content hash: every parameter's name, length and bits, in order. */
export function snapshotHash(arrays: ReadonlyMap<string, Float32Array>): string {
  const h = createHash('sha256');
  for (const [name, a] of arrays) {
    h.update(`${name}:${a.length};`);
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest('hex');
}

// JSON has no NaN or ±Infinity (a NaN reward is how a bad edit shows): they travel as strings.
const NONFINITE = new Set(['NaN', 'Infinity', '-Infinity']);
export const encodeJson = (x: unknown) => JSON.stringify(x, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v instanceof Float64Array ? Array.from(v) : v));
export const decodeJson = <T>(s: string): T => JSON.parse(s, (_, v) => (typeof v === 'string' && NONFINITE.has(v) ? Number(v) : v)) as T;

/** A result as the worker returns it (a JSON string), with gradients back as Float64Array. */
export function decodeResult(raw: string): JobResult {
  const r = decodeJson<JobResult>(raw);
  r.outcomes = r.outcomes.map((o) => ('grad' in o ? { ...o, grad: Float64Array.from(o.grad as unknown as number[]) } : o));
  return r;
}
