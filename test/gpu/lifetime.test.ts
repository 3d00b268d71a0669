// Regression test for the process crash of docs/lavapipe-crash.md: a garbage-collected Dawn
// instance under a live device. Runs in a child process so a crash is a failure, not a lost runner.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('a device outlives the Gpu object that made it, under forced GC', () => {
  // The same pattern on raw dawn.node, with the instance dropped, crashed 20 of 20 runs.
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'test/fixtures/gc-lifetime.ts'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.signal, null, `killed by ${r.signal}\n${r.stderr}`);
  assert.is(r.status, 0, `exit ${r.status}\n${r.stderr}`);
  assert.match(r.stdout, /lifetime: ok/);
});

test.run();
