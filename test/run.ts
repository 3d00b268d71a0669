// Runs every test/**/*.test.ts in its own child process. A GPU crash (Dawn or the driver aborting
// the process) then shows up as a named failure with its signal and last output, not as a runner
// that vanished. Usage: npm test [-- name-filter ...]
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);

function findTests(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return findTests(p);
    return e.name.endsWith('.test.ts') ? [p] : [];
  });
}

interface Result {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  ms: number;
  crash?: string;
}

function runFile(file: string): Promise<Result> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      const s = String(d);
      // Dawn notes these on every device creation; they are not test output.
      const kept = s.split('\n').filter((l) => !/artificially reduced/.test(l)).join('\n');
      out += kept;
      if (kept.trim()) process.stderr.write(kept.endsWith('\n') ? kept : kept + '\n');
    });
    child.on('close', (code, signal) => {
      const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(out)?.[1] ?? 0);
      const total = num('Total');
      const passed = num('Passed');
      const skipped = num('Skipped');
      const r: Result = { file: relative(root, file), passed, failed: total - passed - skipped, skipped, ms: performance.now() - t0 };
      if (signal || (code !== 0 && r.failed === 0) || total === 0) {
        const tail = out.trim().split('\n').slice(-6).join('\n    ');
        r.crash = `${signal ? `killed by ${signal}` : `exited with code ${code}`} after ${passed} passing tests${total === 0 ? ' (no uvu summary)' : ''}\n    ${tail}`;
        r.failed = Math.max(1, r.failed);
      }
      resolve(r);
    });
  });
}

const files = findTests(join(root, 'test'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
const results: Result[] = [];
for (const f of files) {
  console.log(`\n── ${relative(root, f)}`);
  results.push(await runFile(f));
}
console.log('\n── summary');
for (const r of results) {
  const status = r.crash ? 'CRASH' : r.failed ? 'FAIL ' : 'ok   ';
  console.log(`${status} ${r.file.padEnd(40)} ${String(r.passed).padStart(3)} passed ${String(r.failed).padStart(2)} failed  ${(r.ms / 1000).toFixed(1)}s`);
  if (r.crash) console.log(`    ${r.crash}`);
}
const passed = results.reduce((s, r) => s + r.passed, 0);
const failed = results.reduce((s, r) => s + r.failed, 0);
const skipped = results.reduce((s, r) => s + r.skipped, 0);
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed > 0 || files.length === 0 ? 1 : 0;
