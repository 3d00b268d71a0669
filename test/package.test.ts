// The package as a user gets it: `npm pack` (which compiles to dist/), then `npm i ./seal-webgpu-*.tgz`
// into an empty folder, then the installed `seal` command (compiled JavaScript: no sources, no tsx),
// the examples, a kernel benchmark and a TypeScript consumer of the typed API. Needs the npm registry
// or the npm cache for the dependencies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'seal-package-'));
const app = join(dir, 'app');
const installed = join(app, 'node_modules', 'seal-webgpu');
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a command to success; prints its wall time, so the log shows where this test's time goes. */
function run(cmd: string, args: string[], cwd: string, timeoutS: number, opts: SpawnSyncOptions = {}): string {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutS * 1000, ...opts });
  console.log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s  ${cmd === process.execPath ? 'node' : cmd} ${args.slice(0, 4).join(' ')}`);
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  assert.is(r.status, 0, `${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status ?? r.signal}:\n${out.slice(-3000)}`);
  return String(r.stdout);
}
const npm = (args: string[], cwd: string, timeoutS: number) => run('npm', [...args, '--no-audit', '--no-fund'], cwd, timeoutS);
const seal = (args: string[], timeoutS: number) => run('npx', ['--no', 'seal', ...args], app, timeoutS);
const example = (name: string, ...args: string[]) => run(process.execPath, [join(installed, 'examples', name), ...args], app, 120);

test('npm pack, then npm i of the tarball into an empty folder', () => {
  mkdirSync(app);
  npm(['pack', '--pack-destination', app], root, 300);
  const tgz = readdirSync(app);
  assert.ok(tgz.length === 1 && /^seal-webgpu-.*\.tgz$/.test(tgz[0]!), `the empty folder holds the tarball alone: ${tgz}`);
  npm(['i', '--prefer-offline', `./${tgz[0]}`], app, 600);
  // Compiled JavaScript with types, the shaders and data beside it; no TypeScript sources, no tsx.
  for (const f of ['dist/src/api/runtime.js', 'dist/src/api/runtime.d.ts', 'dist/src/api/seal.d.ts', 'dist/shaders/matmul.wgsl', 'dist/data/base.safetensors', 'examples/adapt.mjs']) {
    assert.ok(existsSync(join(installed, f)), `the package has ${f}`);
  }
  assert.not.ok(existsSync(join(installed, 'src')), 'no sources in the package');
  assert.not.ok(existsSync(join(app, 'node_modules', 'tsx')), 'tsx is not installed');
});

test('the installed seal: doctor, demo --quick, bench --kernel, bench --quick', () => {
  assert.match(seal(['doctor'], 120), 'This machine can run seal-webgpu');
  const demo = seal(['demo', '--quick', '--run', 'demo'], 600);
  assert.match(demo, /seal +\d+\.\d+/);
  assert.ok(existsSync(join(app, 'demo', 'report', 'report.md')), 'the demo wrote its report');
  writeFileSync(join(app, 'double.wgsl'), '@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) i: vec3<u32>) { x[i.x] = 2.0 * x[i.x]; }\n');
  const row = JSON.parse(seal(['bench', '--kernel', 'double.wgsl', '--dispatch', '4', '--buffers', '1k', '--reps', '3', '--json'], 120)) as Record<string, unknown>;
  assert.equal(Object.keys(row), ['name', 'kind', 'shape', 'ms', 'gflops', 'adapter', 'timing']);
  assert.ok((row.ms as number) > 0);
  // The matmul suite, on its smallest shape (no peers beyond plain JS with --quick).
  const rows = seal(['bench', '--quick', '--filter', '256³', '--json'], 300).trim().split('\n').map((l) => JSON.parse(l) as { name: string; gflops: number });
  assert.ok(rows.some((r) => r.name.startsWith('seal ') && r.gflops > 0), JSON.stringify(rows));
});

test('the examples run from the installed package', () => {
  assert.match(example('matmul-bench.mjs', '64'), /64×64×64 {2}your shader: .* GFLOP\/s/);
  assert.match(example('finetune.mjs', '2'), /answer NLL on .*: \d+\.\d+ → \d+\.\d+/);
  assert.match(example('adapt.mjs'), /wrote the edit: h\.0\.mlp\.c_fc\.weight/);
});

test('a TypeScript consumer type-checks against the installed .d.ts', () => {
  writeFileSync(
    join(app, 'consumer.ts'),
    [
      "import { dawnGpu, matmul, type F32, type Tensor } from 'seal-webgpu';",
      "import { loadModel, bundled } from 'seal-webgpu/model';",
      "import { Adapter, type EvalResult } from 'seal-webgpu/seal';",
      'export async function f(): Promise<number> {',
      '  const gpu = await dawnGpu();',
      "  const { model, tokenizer } = await loadModel(gpu, bundled('base.safetensors'));",
      "  const wte = model.params.get('wte.weight')! as F32; // f32: weights are f16 only with --dtype f16",
      "  const a: Tensor = matmul(gpu, wte, wte.reshape([128, -1]));",
      "  const adapter: Adapter = Adapter.fixedStep(model, tokenizer, (await import('seal-webgpu/seal')).resolveConfig(), 'sign', 6);",
      '  const r: EvalResult | undefined = undefined;',
      '  adapter.release();',
      '  return a.size + (r ? 1 : 0);',
      '}',
      '// @ts-expect-error: internals are not exported',
      "import { SealTrainer } from 'seal-webgpu/src/seal/trainer.ts';",
    ].join('\n'),
  );
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--typeRoots', join(root, 'node_modules', '@types'), '--types', 'node', 'consumer.ts'], app, 120);
});

test.run();
