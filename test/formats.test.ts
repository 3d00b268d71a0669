// Format versions: every file seal-webgpu writes says its version; a version-0 file (written before
// versions existed: the fixtures in test/fixtures/formats/, made by that code) is still read; a
// newer or unknown version is a FormatVersionError naming both versions, through the API and the CLI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AUTOTUNE_VERSION, TuningCache } from '../src/io/tuning-cache.ts';
import { withSafetensors, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.ts';
import type { F32 } from '../src/gpu/tensor.ts';
import { CHECKPOINT_VERSION, loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.ts';
import { loadModel } from '../src/model/load.ts';
import { add } from '../src/ops/elementwise.ts';
import { Adapter, EDIT_VERSION, readEdit, writeEdit } from '../src/seal/adapt.ts';
import { Generator, GENERATOR_VERSION } from '../src/seal/generator.ts';
import { Policy, POLICY_VERSION } from '../src/seal/policy.ts';
import { openRun, readConfigFields, RUN_VERSION } from '../src/seal/run.ts';
import { FormatVersionError } from '../src/util/format.ts';
import { gpu, releaseGpu, sameBits } from './helpers.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(root, 'test/fixtures/formats');
const V0 = { model: join(fixtures, 'model-v0.safetensors'), policy: join(fixtures, 'policy-v0.safetensors'), bare: join(fixtures, 'bare-policy-v0.safetensors'), edit: join(fixtures, 'edit-v0.safetensors'), run: join(fixtures, 'run-v0') };
const dir = mkdtempSync(join(tmpdir(), 'seal-formats-'));
test.after(() => {
  releaseGpu();
  rmSync(dir, { recursive: true, force: true });
});

/** A copy of a safetensors file with its metadata `version` set to `version`. */
async function withVersion(file: string, version: string, name: string): Promise<string> {
  const { tensors, metadata } = await withSafetensors(file, async (f) => {
    const ts: [string, TensorToWrite][] = [];
    for (const n of f.names) ts.push([n, { shape: f.tensors.get(n)!.shape, data: await f.get(n) }]);
    return { tensors: ts, metadata: { ...f.metadata } };
  });
  const out = join(dir, name);
  await writeSafetensors(out, tensors, { ...metadata, version });
  return out;
}

const metadataOf = (file: string) => withSafetensors(file, async (f) => ({ ...f.metadata }));

async function rejectsVersion(p: Promise<unknown>, what: string, found: string, current: number): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, FormatVersionError);
    const m = (e as Error).message;
    assert.match(m, `${what} format version ${found}`);
    assert.match(m, `(0 to ${current})`);
    return;
  }
  assert.unreachable(`expected a FormatVersionError for ${what} version ${found}`);
}

test('checkpoints: written with their version; version 0 loads; newer and unknown versions are named errors', async () => {
  const g = await gpu();
  const old = await loadCheckpoint(g, V0.model);
  const file = join(dir, 'model.safetensors');
  await saveCheckpoint(file, old.model, { tokenizer: old.tokenizer });
  assert.is((await metadataOf(file)).version, String(CHECKPOINT_VERSION));
  const again = await loadModel(g, file);
  for (const [name, t] of old.model.params) sameBits((await g.read(again.model.params.get(name)!)) as Float32Array, (await g.read(t)) as Float32Array, name);
  again.model.release();
  old.model.release();
  await rejectsVersion(loadModel(g, await withVersion(file, String(CHECKPOINT_VERSION + 1), 'model-next.safetensors')), 'checkpoint', String(CHECKPOINT_VERSION + 1), CHECKPOINT_VERSION);
  await rejectsVersion(loadModel(g, await withVersion(file, 'x1', 'model-x.safetensors')), 'checkpoint', 'x1', CHECKPOINT_VERSION);
});

test('generators and policies: version 0 adapts and loads; a newer one is refused by Adapter.load and Policy.load', async () => {
  const g = await gpu();
  const { model, tokenizer } = await loadModel(g, V0.model);
  const adapter = await Adapter.load(g, model, tokenizer, V0.policy);
  const edit = await adapter.adapt('Here are a few facts.');
  assert.ok(Number.isFinite(edit.editNorm));
  // Resaved, it carries the current version.
  const { arrays, metadata } = await Generator.read(V0.policy);
  const file = join(dir, 'policy.safetensors');
  const shapes = new Map([...arrays].map(([k, a]) => [k, g.tensor(a)] as const));
  await Generator.write(file, shapes, arrays, { seal: metadata.seal! });
  for (const t of shapes.values()) t.release();
  assert.is((await metadataOf(file)).version, String(GENERATOR_VERSION));
  adapter.release();
  await rejectsVersion(Adapter.load(g, model, tokenizer, await withVersion(file, '7', 'policy-next.safetensors')), 'SEAL generator', '7', GENERATOR_VERSION);
  model.release();

  const bare = await Policy.load(g, V0.bare);
  const bareFile = join(dir, 'bare.safetensors');
  await bare.save(bareFile);
  assert.is((await metadataOf(bareFile)).version, String(POLICY_VERSION));
  bare.release();
  await rejectsVersion(Policy.load(g, await withVersion(bareFile, '2', 'bare-next.safetensors')), 'policy', '2', POLICY_VERSION);
  for (const t of g.liveLabels()) assert.unreachable(`leaked ${t}`);
});

test('edits: version 0 (format under `kind`) reads; writeEdit writes the version; a newer one is refused', async () => {
  const g = await gpu();
  const old = await readEdit(V0.edit);
  const name = 'h.0.mlp.c_proj.weight';
  const { model } = await loadModel(g, V0.model);
  // The fixture's edit was 0.5·W: the same as one made now.
  const w = model.params.get(name)! as F32; // loaded f32
  const edited = add(g, w, w, 0.5);
  const file = join(dir, 'edit.safetensors');
  await writeEdit(file, model, new Map([[name, edited]]));
  assert.is((await metadataOf(file)).version, String(EDIT_VERSION));
  sameBits((await readEdit(file)).get(name)!.data as Float32Array, old.get(name)!.data as Float32Array, 'edit');
  edited.release();
  model.release();
  await rejectsVersion(readEdit(await withVersion(file, '2', 'edit-next.safetensors')), 'edit', '2', EDIT_VERSION);
});

test('run directories: a version-0 run resumes; config.json carries the version; a newer one is refused', async () => {
  const run = join(dir, 'run-v0');
  cpSync(V0.run, run, { recursive: true });
  const fields = await readConfigFields(join(run, 'config.json'));
  const resumed = await openRun(run, {} as never, true);
  assert.is(resumed.state?.iteration, 1);
  assert.equal(resumed.config.model, fields.model);
  const fresh = join(dir, 'run-new');
  await openRun(fresh, resumed.config, false);
  const saved = JSON.parse(readFileSync(join(fresh, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.is(saved.version, RUN_VERSION);
  writeFileSync(join(run, 'config.json'), JSON.stringify({ ...saved, version: RUN_VERSION + 1 }));
  await rejectsVersion(openRun(run, resumed.config, true), 'run directory', String(RUN_VERSION + 1), RUN_VERSION);
});

test('autotune cache: a newer version is ignored with a warning naming both versions, and left unchanged', () => {
  const cacheDir = join(dir, 'cache');
  mkdirSync(cacheDir);
  const summary = { vendor: 'v', architecture: 'a', device: 'd', description: 'test adapter', backend: 'vulkan', isFallbackAdapter: false };
  const env = { SEAL_CACHE_DIR: cacheDir };
  const first = new TuningCache(summary, env, () => assert.unreachable('no warning for a fresh cache'));
  first.set('k', { choice: 'a', ms: { a: 1 } });
  assert.is(JSON.parse(readFileSync(first.file, 'utf8')).version, AUTOTUNE_VERSION);
  const newer = JSON.stringify({ version: AUTOTUNE_VERSION + 1, adapter: 'test adapter', entries: { k: { choice: 'b', ms: {} } } });
  writeFileSync(first.file, newer);
  const warnings: string[] = [];
  const cache = new TuningCache(summary, env, (m) => warnings.push(m));
  assert.is(cache.get('k'), undefined);
  assert.is(warnings.length, 1);
  assert.match(warnings[0]!, `autotune cache format version ${AUTOTUNE_VERSION + 1} is newer than the versions this seal-webgpu reads (0 to ${AUTOTUNE_VERSION})`);
  cache.set('k', { choice: 'a', ms: { a: 1 } });
  assert.is(readFileSync(first.file, 'utf8'), newer);
});

const seal = (...args: string[]) => spawnSync(process.execPath, ['bin/seal.js', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });

test('through the CLI: version-0 files adapt; a newer checkpoint is one line naming both versions, exit 2', async () => {
  const ok = seal('adapt', '--policy', V0.policy, '--text', 'Here are a few facts.', '--question', 'Who?', '--max-new', '2', '--write-edit', join(dir, 'cli-edit.safetensors'));
  assert.is(ok.status, 0, ok.stderr);
  assert.is((await metadataOf(join(dir, 'cli-edit.safetensors'))).version, String(EDIT_VERSION));
  const next = await withVersion(V0.model, '3', 'model-v3.safetensors');
  const r = seal('adapt', '--policy', V0.policy, '--model', next, '--text', 'Here are a few facts.', '--question', 'Who?');
  assert.is(r.status, 2, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.trim() && !/artificially reduced/.test(l));
  assert.equal(lines, [`seal adapt: ${next}: checkpoint format version 3 is newer than the versions this seal-webgpu reads (0 to ${CHECKPOINT_VERSION}); it was written by a newer seal-webgpu: upgrade to read it`]);
  // A run directory of an unknown version, resumed.
  const run = join(dir, 'run-cli');
  cpSync(V0.run, run, { recursive: true });
  writeFileSync(join(run, 'config.json'), JSON.stringify({ ...(await readConfigFields(join(V0.run, 'config.json'))), version: 'beta' }));
  const t = seal('train', '--run', run, '--resume');
  assert.is(t.status, 2, t.stderr);
  assert.match(t.stderr, `seal train: ${join(run, 'config.json')}: run directory format version beta is not one of the versions this seal-webgpu reads (0 to ${RUN_VERSION})\n`);
});

test.run();
