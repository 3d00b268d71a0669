// The page bundles without a browser: every module it reaches (src/ through web/main.ts) must be free
// of Node built-ins once web/build.ts swaps io/files.ts and io/atomic.ts — esbuild fails otherwise,
// naming the module. Runs where Chromium is not installed, so the browser test's skip hides nothing here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST, buildPage } from '../../web/build.ts';

test('the playground bundles for the browser, shaders inlined, no Node module left', async () => {
  await buildPage();
  const app = readFileSync(join(DIST, 'app.js'), 'utf8');
  assert.not.match(app, /(?:from\s*|import\(|require\()["'](?:node:|webgpu["'])/, 'no Node built-in, no Dawn');
  // A line of common.wgsl and of the subgroup matmul, which the page's kernels need as text.
  for (const file of ['common.wgsl', 'matmul-subgroups.wgsl']) {
    const line = readFileSync(join('shaders', file), 'utf8').split('\n').find((l) => l.trim().length > 20 && !l.trim().startsWith('//'))!;
    assert.ok(app.includes(JSON.stringify(line.trim()).slice(1, -1)) || app.includes(line.trim()), `${file} is in the bundle`);
  }
});

test.run();
