// Scale-out (docs/scale-out.md): `seal train --workers` with `seal worker` processes on one Redis.
// A worker killed in the middle of a job has it retried by another, and the run still ends bit for
// bit where the single-process run of the same seed ends; --resume works with workers; a worker
// with another base model refuses with a named error; no worker, an unreachable queue and a queue
// lost mid-run are each said. Needs a Redis server: SEAL_TEST_REDIS=redis://127.0.0.1:PORT (.ci/run
// starts one); without it these tests are skipped, and say so.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { trainRun } from '../../src/cli/train.ts';
import { saveCheckpoint } from '../../src/model/checkpoint.ts';
import { GPT2 } from '../../src/model/gpt2.ts';
import { resolveConfig, type SealConfig } from '../../src/seal/config.ts';
import { Generator } from '../../src/seal/generator.ts';
import { fileHash, jobId, PROTOCOL, queueName, type ScoringJob } from '../../src/scale/queue.ts';
import type { QueueOptions } from '../../src/scale/remote-task.ts';
import { runFiles } from '../../src/seal/run.ts';
import { loadSquad, toSquadFile, writeSquad } from '../../src/tasks/squad.ts';
import { UserError } from '../../src/util/errors.ts';
import { gpu, releaseGpu, sameBits } from '../helpers.ts';

const REDIS = process.env.SEAL_TEST_REDIS;
const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
if (!REDIS) console.log('\n!!! SKIPPED: the scale-out tests with a queue need Redis: set SEAL_TEST_REDIS=redis://127.0.0.1:PORT (.ci/run starts one) !!!\n');
const withRedis = REDIS ? test : test.skip;
// CI must run them: .ci/run starts a server through scripts/with-redis.sh.
if (!REDIS && process.env.CI) test('CI gives the scale-out tests a Redis server', () => assert.unreachable('SEAL_TEST_REDIS is not set: run the tests through scripts/with-redis.sh'));
const withOwnRedis = REDIS && hasRedisServer ? test : test.skip;

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'seal-scale-out-'));
const children: ChildProcess[] = [];
test.after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  releaseGpu();
  rmSync(dir, { recursive: true, force: true });
});

const tiny = { vocabSize: 257, nCtx: 64, nLayer: 1, nHead: 2, nEmbd: 16 };

async function modelFile(name: string, seed: number): Promise<string> {
  const g = await gpu();
  const model = GPT2.init(g, tiny, seed);
  const path = join(dir, `${name}.safetensors`);
  await saveCheckpoint(path, model, { tokenizer: 'byte' });
  model.release();
  return path;
}

let fixture: SealConfig | undefined;
async function config(): Promise<SealConfig> {
  if (fixture) return fixture;
  const train = (await loadSquad('data/knowledge/rl-train.json')).slice(0, 4);
  const held = (await loadSquad('data/knowledge/validation.json')).slice(0, 2);
  await writeSquad(join(dir, 'train.json'), toSquadFile(train));
  await writeSquad(join(dir, 'held.json'), toSquadFile(held));
  writeFileSync(join(dir, 'general.txt'), 'The river runs to the sea.\nA cat sat on the warm wall.\nRain fell all day.\n');
  fixture = resolveConfig({
    model: await modelFile('base', 3),
    data: { train: join(dir, 'train.json'), validation: join(dir, 'held.json'), general: join(dir, 'general.txt') },
    algo: 'ppo',
    iterations: 3,
    batch: 2,
    group: 2,
    epochs: 2,
    latent: 8,
    evalEvery: 2,
    validationCount: 2,
    forgettingLines: 3,
    checkpointEvery: 1,
  });
  return fixture;
}

const freePort = () =>
  new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });

interface Proc {
  name?: string;
  child: ChildProcess;
  out: string[];
  /** Resolves with the first output line (past or future) matching re. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

function start(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out: string[] = [];
  const waiters: { re: RegExp; res: (m: RegExpMatchArray) => void }[] = [];
  const onData = (d: Buffer) => {
    for (const line of String(d).split('\n').filter(Boolean)) {
      out.push(line);
      for (const w of [...waiters]) {
        const m = line.match(w.re);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.res(m);
        }
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return {
    child,
    out,
    waitFor: (re, ms = 60_000) =>
      new Promise((res, rej) => {
        const seen = out.map((l) => l.match(re)).find(Boolean);
        if (seen) return res(seen);
        const timer = setTimeout(() => rej(new Error(`no line matching ${re} within ${ms} ms; output:\n${out.join('\n')}`)), ms);
        waiters.push({ re, res: (m) => (clearTimeout(timer), res(m)) });
      }),
  };
}

const LOCK_MS = 3000;
async function worker(url: string, name: string, model: string): Promise<Proc> {
  const w = start(process.execPath, ['bin/seal.js', 'worker', '--queue', url, '--model', model, '--name', name, '--lock-ms', String(LOCK_MS)]);
  await w.waitFor(/ready on/);
  return { ...w, name };
}

const stopped = (p: Proc) => new Promise<void>((res) => (p.child.exitCode !== null || p.child.signalCode !== null ? res() : p.child.once('exit', () => res())));

function queueOpts(url: string, status: string[] = [], workerTimeoutMs = 60_000): QueueOptions {
  return { url, queueTimeoutMs: 60_000, workerTimeoutMs, status: (l) => status.push(l) };
}

let single: Promise<unknown> | undefined;
/** The single-process run every run with workers is compared with. */
const singleRun = async () => (single ??= config().then((c) => train('single', c)));

async function train(run: string, c: SealConfig, opts: { resume?: boolean; stopAfter?: number; workers?: QueueOptions } = {}) {
  const r = await trainRun(await gpu(), join(dir, run), c, opts.resume ?? false, true, opts.stopAfter ?? Infinity, opts.workers);
  r.trainer.release();
  r.model.release();
  return r;
}

/** The policy, the checkpoint (generator, Adam moments, best snapshot) and metrics.jsonl (times aside) of two runs agree bit for bit. */
async function sameRun(a: string, b: string): Promise<void> {
  for (const file of ['policy', 'checkpoint'] as const) {
    const x = await Generator.read(runFiles(join(dir, a))[file]);
    const y = await Generator.read(runFiles(join(dir, b))[file]);
    assert.equal([...y.arrays.keys()], [...x.arrays.keys()]);
    for (const [name, v] of x.arrays) sameBits(y.arrays.get(name)!, v, `${b} vs ${a}, ${file}: ${name}`);
  }
  const strip = (run: string) =>
    readFileSync(runFiles(join(dir, run)).metrics, 'utf8').split('\n').filter(Boolean).map((l) => {
      const { ms: _ms, ...rest } = JSON.parse(l);
      return rest;
    });
  assert.equal(strip(b), strip(a));
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, UserError, String(e));
    assert.match((e as Error).message, re);
    return e as Error;
  }
  assert.unreachable(`expected an error matching ${re}`);
  throw new Error('unreachable');
}

test('an unreachable queue is a clear error within seconds, for the learner and the worker', async () => {
  const url = `redis://127.0.0.1:${await freePort()}`;
  for (const args of [['train', '--run', join(dir, 'never'), '--workers', url], ['worker', '--queue', url]]) {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['bin/seal.js', ...args], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`seal ${args[0]}: cannot reach the queue at ${url}: .*ECONNREFUSED`));
    assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
  }
});

/** The first of `procs` to print a line matching re, and the match. */
const firstTo = (procs: Proc[], re: RegExp) => Promise.race(procs.map((p) => p.waitFor(re, 120_000).then((m) => ({ p, id: m[1]! }))));

withRedis('a worker killed mid-iteration has its job retried elsewhere, a stopped one\'s late result is dropped, and the run ends bit for bit as the single-process run', async () => {
  const url = REDIS!;
  const c = await config();
  await singleRun();
  const ws = await Promise.all(['w1', 'w2', 'w3'].map((n) => worker(url, n, c.model)));
  // The first worker to take a job dies holding it (iteration 0).
  const killed = firstTo(ws, /job (\S+) started/).then(({ p, id }) => {
    p.child.kill('SIGKILL');
    return { p, id };
  });
  // A survivor is stopped holding a job of iteration 1 past its lock, then let go: it finishes a job
  // another worker has taken over and done meanwhile, and its late result must change nothing.
  const zombie = killed.then(({ p: dead }) =>
    firstTo(ws.filter((w) => w !== dead), /job ([\w-]+\.1\.\d+\.\S+) started/).then(async ({ p, id }) => {
      p.child.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, 2 * LOCK_MS + 1000));
      p.child.kill('SIGCONT');
      await p.waitFor(new RegExp(`job ${id.replace(/\./g, '\\.')} done`));
      return { p, id };
    }),
  );
  const r = await train('three-workers', c, { workers: queueOpts(url) });
  const [dead, late] = [await killed, await zombie];
  await stopped(dead.p);
  assert.not.ok(dead.p.out.some((l) => l.includes(`job ${dead.id} done`)), 'the killed worker finished its job');
  await sameRun('single', 'three-workers');
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  const q = new Queue(queueName(await fileHash(c.model)), { connection: conn });
  for (const { p, id } of [dead, late]) {
    // Taken back from the dead (or stopped) worker and done by another.
    const job = await Job.fromId(q, id);
    assert.ok(job, `job ${id} is gone`);
    assert.is.not(JSON.parse(job!.returnvalue as string).worker, p.name, `job ${id}: the result is from the worker that lost it`);
    assert.ok(job!.stalledCounter >= 1, `job ${id} was never taken from its worker (stalledCounter ${job!.stalledCounter})`);
  }
  await q.close();
  conn.disconnect(); // BullMQ leaves a connection it was given open
  assert.is(r.queue!.jobs, c.iterations * c.batch, 'one job per passage and iteration');
  const live = ws.filter((w) => w !== dead.p);
  for (const w of live) w.child.kill('SIGTERM');
  await Promise.all(live.map(stopped));
  for (const w of live) assert.is(w.child.exitCode, 0, w.out.join('\n'));
});

withRedis('--resume with workers ends where the uninterrupted single-process run does (meta-gradient)', async () => {
  const url = REDIS!;
  const c = { ...(await config()), algo: 'meta' as const, iterations: 4 };
  await train('meta-single', c);
  const w = await worker(url, 'w3', c.model);
  await train('meta-resumed', c, { workers: queueOpts(url), stopAfter: 2 });
  await train('meta-resumed', c, { workers: queueOpts(url), resume: true });
  await sameRun('meta-single', 'meta-resumed');
  w.child.kill('SIGTERM');
  await stopped(w);
});

withRedis('a worker with another base model takes none of the run\'s jobs; the learner says no worker is alive for its model, then stops', async () => {
  const url = REDIS!;
  const c = await config();
  const other = await worker(url, 'w-other', await modelFile('other', 4));
  const status: string[] = [];
  const t0 = Date.now();
  await rejects(train('no-worker', c, { workers: queueOpts(url, status, 2000) }), /no worker alive for this run's base model on .* for 2 s with 2 jobs waiting; stopped/);
  assert.ok(status.some((l) => /no worker alive .*seal worker --queue .* --model /.test(l)), status.join('\n'));
  assert.ok(Date.now() - t0 < 30_000);
  assert.not.ok(other.out.some((l) => /job .* started/.test(l)), 'the other model\'s worker took a job');

  // A job for another model that reaches a worker anyway is refused, by name.
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  const q = new Queue(queueName(await fileHash(join(dir, 'other.safetensors'))), { connection: conn });
  const data: ScoringJob = { kind: 'variant-a', op: 'score', protocol: PROTOCOL, run: 'stray', iteration: 0, passage: 0, samples: [0], coef: [[0]], penalty: 0, model: await fileHash(c.model), policy: 'p' };
  const job = await q.add('variant-a/score', data, { jobId: jobId(data) });
  let failed = '';
  for (let i = 0; i < 100 && !failed; i++) {
    await new Promise((r) => setTimeout(r, 200));
    failed = (await Job.fromId(q, job.id!))?.failedReason ?? '';
  }
  assert.match(failed, /^ModelMismatchError: worker w-other refuses job stray\.0\.0\.0-0: its base model file has sha256 \w+…, the run's has \w+…/);
  await q.obliterate({ force: true });
  await q.close();
  conn.disconnect(); // BullMQ leaves a connection it was given open
  other.child.kill('SIGTERM');
  await stopped(other);
});

withOwnRedis('a queue lost mid-run: the learner says it waits, and goes on when it is back', async () => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const redis = () => start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  let server = redis();
  await server.waitFor(/Ready to accept connections/);
  const c = await config();
  await singleRun();
  const w = await worker(url, 'w4', c.model);
  const status: string[] = [];
  // The queue dies (and loses every job: no persistence) after the second job, and is back 3 s later.
  const outage = w.waitFor(/job \S+ done/).then(async () => {
    await w.waitFor(/job [\w-]+\.1\.\d+\.\S+ started/);
    server.child.kill('SIGKILL');
    await stopped(server);
    await new Promise((r) => setTimeout(r, 3000));
    server = redis();
    await server.waitFor(/Ready to accept connections/);
  });
  const r = await train('queue-lost', c, { workers: queueOpts(url, status) });
  await outage;
  assert.ok(status.some((l) => /unreachable .*waiting for it/.test(l)), status.join('\n'));
  assert.ok(status.some((l) => /is back after/.test(l)), status.join('\n'));
  assert.ok(r.queue!.resent > 0, 'no job was re-sent after the queue came back empty');
  await sameRun('single', 'queue-lost');
  w.child.kill('SIGTERM');
  server.child.kill('SIGTERM');
  await Promise.all([stopped(w), stopped(server)]);
});

test.run();
