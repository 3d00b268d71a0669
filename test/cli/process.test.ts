// Whole-process behaviour: a finished program exits by itself; a missing adapter is actionable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const seal = (...args: string[]) =>
  spawnSync(process.execPath, ['bin/seal.js', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

test('a program that ran GPU work exits on its own', () => {
  // No process.exit(): the runtime must release Dawn's handle or Node would stay alive.
  const script = `
    import { dawnGpu } from './src/io/dawn.ts';
    import { scale } from './src/ops/elementwise.ts';
    const g = await dawnGpu();
    const x = g.tensor(new Float32Array([1, 2, 3]));
    console.log(Array.from(await g.read(scale(g, x, 2))).join(','));
    g.destroy();`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  assert.is(r.signal, null, `killed after ${Date.now() - t0} ms: the process did not exit by itself`);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), '2,4,6');
});

test('seal doctor passes its self-test and exits', () => {
  const r = seal('doctor', '--json');
  assert.is(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.ok(report.ok);
  assert.ok(report.selfTest.length >= 2);
  assert.ok(report.selfTest.every((t: { ok: boolean }) => t.ok));
  assert.type(report.adapter.description, 'string');
  assert.ok(report.limits.maxStorageBufferBindingSize > 0);
});

test('seal doctor on a backend this machine lacks says what to install', () => {
  const missing = process.platform === 'darwin' ? 'd3d12' : 'metal';
  const r = seal('--backend', missing, 'doctor');
  assert.is(r.status, 2);
  assert.match(r.stderr, new RegExp(`no WebGPU adapter found for backend=${missing}`));
  assert.match(r.stderr, /apt-get install -t bookworm-backports mesa-vulkan-drivers/);
});

test('seal rejects an unknown backend name', () => {
  const r = seal('--backend', 'vulkann', 'doctor');
  assert.not.equal(r.status, 0);
  assert.match(r.stderr, /vulkann.*invalid.*vulkan, metal/s);
});

test.run();
