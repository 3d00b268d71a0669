// User errors through the whole program: one line `seal <command>: <message>` and exit code 2, no
// stack; a valid file with a question-less paragraph runs with a warning.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import type { SquadFile } from '../../src/tasks/squad.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'seal-errors-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const BASE = join(root, 'data/base.safetensors');
const seal = (...args: string[]) => sealEnv({}, ...args);
const sealEnv = (env: NodeJS.ProcessEnv, ...args: string[]) => spawnSync(process.execPath, ['bin/seal.js', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
/** stderr without Dawn's adapter warnings (seal doctor explains them). */
const errLines = (stderr: string) => stderr.split('\n').filter((l) => l.trim() && !/artificially reduced/.test(l));
const evalArgs = (model: string, ...more: string[]) => ['eval', '--model', model, '--methods', 'base', '--passages', '1', '--general', '2', '--max-new', '2', ...more];

function refused(args: string[], message: RegExp, env: NodeJS.ProcessEnv = {}): void {
  const r = sealEnv(env, ...args);
  assert.is(r.status, 2, r.stderr);
  const lines = errLines(r.stderr);
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, message);
}

test('a malformed model file: one line naming the command and the file', () => {
  const bad = join(dir, 'bad.safetensors');
  writeFileSync(bad, Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a":')]));
  refused(evalArgs(bad), /^seal eval: .*bad\.safetensors: header length 65535 runs past the end of the file/);
});

test('a model file with a NaN weight is refused at load, naming the tensor', async () => {
  const nan = join(dir, 'nan.safetensors');
  const { tensors, metadata } = await withSafetensors(BASE, async (f) => ({
    metadata: f.metadata,
    tensors: await Promise.all(f.names.map(async (n): Promise<[string, TensorToWrite]> => [n, { shape: f.tensors.get(n)!.shape, data: await f.get(n) }])),
  }));
  tensors.find(([n]) => n === 'h.1.mlp.c_fc.weight')![1].data[77] = NaN;
  await writeSafetensors(nan, tensors, metadata);
  refused(evalArgs(nan), /^seal eval: .*nan\.safetensors: tensor 'h\.1\.mlp\.c_fc\.weight' holds NaN at index 77/);
});

test('a SQuAD paragraph with no questions is skipped with a warning; the rest is evaluated', () => {
  const split = JSON.parse(readFileSync(join(root, 'data/knowledge/held-out.json'), 'utf8')) as SquadFile;
  const file: SquadFile = { version: '1.1', data: [{ title: 'Empty questions', paragraphs: [{ context: 'Nothing is asked here.', qas: [] }] }, split.data[0]!] };
  const path = join(dir, 'empty-paragraph.json');
  writeFileSync(path, JSON.stringify(file));
  copyFileSync(join(root, 'data/knowledge/general.txt'), join(dir, 'general.txt'));
  const r = seal(...evalArgs(BASE, '--split', path, '--data-dir', dir, '--seeds', '1', '--json'));
  assert.is(r.status, 0, r.stderr);
  assert.equal(errLines(r.stderr), [`${path}: skipping 1 paragraph with no questions: 'Empty questions' paragraph 0`]);
  const result = JSON.parse(r.stdout) as { runs: { passage: string; method: string }[]; peakGpuBytes: number };
  assert.equal(result.runs.map((x) => [x.method, x.passage]), [['base', '1.0']]);
  // The model's 1.8 MB of weights and more were held at the peak.
  assert.ok(result.peakGpuBytes > 1_700_000, `peakGpuBytes ${result.peakGpuBytes}`);
});

test('a model too large for the adapter: one line naming needed and available memory, f32 or f16', () => {
  refused(evalArgs(BASE), /^seal eval: .*base\.safetensors: the model needs about \d+ MiB of GPU memory \(weights 2 MiB, activations \d+ MiB\) but 1 MiB are available on .*; use a smaller model or batch, or --dtype f16$/, { SEAL_GPU_MEMORY: String(2 ** 20) });
  refused(evalArgs(BASE, '--dtype', 'f16'), /^seal eval: .*the model needs about \d+ MiB of GPU memory \(weights 1 MiB \(f16\), activations \d+ MiB\) but 1 MiB are available/, { SEAL_GPU_MEMORY: String(2 ** 20) });
});

test('an unknown method is a user error too (no stack)', () => {
  refused(evalArgs(BASE, '--methods', 'bogus'), /^seal eval: unknown method 'bogus' \(known: base, /);
});

test('seal finetune: an unreadable text file, and a LoRA target that is no linear', () => {
  refused(['finetune', '--data', join(dir, 'missing.txt')], /^seal finetune: .*missing\.txt: cannot read the text file \(ENOENT\)/);
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'Vel Orin plays the harp.\n');
  refused(['finetune', '--data', text, '--targets', 'wte.weight', '--steps', '1', '--seq', '16', '--out', join(dir, 'a.safetensors')], /^seal finetune: lora: wte\.weight is not a block's linear weight/);
});

test.run();
