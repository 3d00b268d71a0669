// Data flows one way (docs/ARCHITECTURE.md): a module under src/ imports only from its own layer or
// the layers below it. The order is written here once; a new import against it fails this test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Top to bottom. reference/ (the plain-JS references) sits above model/ only for the types it mirrors. */
const LAYERS = ['cli', 'api', 'scale', 'report', 'seal', 'tasks', 'reference', 'model', 'io', 'ops', 'gpu', 'util'];
/** The references serve tests and `seal doctor`'s self-test, never the pipeline. */
const REFERENCE_USERS = ['cli', 'reference'];

/**
 * The runtime a page bundles (web/): no Node built-ins, no `process`, no Dawn. File access goes
 * through io/files.ts and io/atomic.ts (swapped for web/files.ts in the browser build), Dawn and
 * the SEAL_* variables through io/dawn.ts, which only the CLI, tests and benchmarks call.
 */
const NODE_FREE = ['gpu', 'ops', 'model', 'seal'];

const src = fileURLToPath(new URL('../src', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The relative module paths a source imports: static imports and re-exports, and `await import(...)`. */
function importsOf(code: string): string[] {
  const statics = [...code.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*'(\.[^']*)'/gms)].map((m) => m[1]!);
  const dynamics = [...code.matchAll(/\bawait import\('(\.[^']*)'\)/g)].map((m) => m[1]!);
  return [...statics, ...dynamics];
}

const layerOf = (file: string): string | undefined => {
  const rel = relative(src, file);
  return rel.startsWith('..') ? undefined : rel.split(/[\\/]/)[0];
};

/** 'from → to' for every import of `file` (whose text is `code`) that goes against the order. */
function violations(file: string, code: string): string[] {
  const from = layerOf(file)!;
  return importsOf(code).flatMap((spec) => {
    const to = layerOf(resolve(dirname(file), spec));
    // Outside src/ (the bench, for `seal bench`) is not part of the stack.
    if (to === undefined || to === from) return [];
    const wrong = LAYERS.indexOf(to) < LAYERS.indexOf(from) || (to === 'reference' && !REFERENCE_USERS.includes(from));
    return wrong ? [`${relative(src, file)} imports ${spec} (${from} → ${to})`] : [];
  });
}

/** What in `code` (comments aside) ties it to Node: a built-in module, `process`, Dawn. */
function nodeUses(code: string): string[] {
  const bare = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const builtins = [...bare.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)'((?:node:)?(?:fs|fs\/promises|path|os|crypto|url|child_process|worker_threads)|webgpu)'/g)].map((m) => m[1]!);
  return [...builtins, ...(/\bprocess\s*\./.test(bare) ? ['process'] : [])];
}

test('every src/ folder is a known layer', () => {
  const folders = readdirSync(src, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  assert.equal(folders.filter((f) => !LAYERS.includes(f)), []);
  assert.equal(readdirSync(src).filter((f) => f.endsWith('.ts')), [], 'no module outside a layer');
});

test('no module imports from a layer above it', () => {
  const files = sources(src);
  assert.ok(files.length > 50, `found ${files.length} sources`);
  assert.equal(files.flatMap((f) => violations(f, readFileSync(f, 'utf8'))), []);
});

test(`${NODE_FREE.join('/, ')}/ use no Node built-in, process or Dawn (a page bundles them)`, () => {
  const found = NODE_FREE.flatMap((dir) => sources(join(src, dir)).flatMap((f) => nodeUses(readFileSync(f, 'utf8')).map((u) => `${relative(src, f)}: ${u}`)));
  assert.equal(found, []);
});

test('the Node check catches imports and process, not comments', () => {
  assert.equal(nodeUses("import { readFileSync } from 'node:fs';"), ['node:fs']);
  assert.equal(nodeUses("import { join } from 'path';\nconst e = process.env.X;"), ['path', 'process']);
  assert.equal(nodeUses("const { create } = await import('webgpu');"), ['webgpu']);
  assert.equal(nodeUses("// kills the process. (see node:fs)\n/* process.env */ const url = 'http://x';"), []);
});

test('the check catches an upward import, multi-line and dynamic ones included', () => {
  const at = (p: string) => join(src, p);
  assert.equal(violations(at('tasks/finetune.ts'), "import { resolveMask } from '../seal/mask.ts';").length, 1);
  assert.equal(violations(at('io/x.ts'), "import {\n  paramSpecs,\n  type GPT2Config,\n} from '../model/config.ts';").length, 1);
  assert.equal(violations(at('ops/x.ts'), "const m = await import('../model/gpt2.ts');").length, 1);
  assert.equal(violations(at('tasks/x.ts'), "import { relu } from '../reference/ops.ts';").length, 1);
  assert.equal(violations(at('seal/x.ts'), "import type { Passage } from '../tasks/squad.ts';\nimport { add } from '../ops/elementwise.ts';"), []);
});

test.run();
