// The playground page in a real browser: Debian's Chromium, headless, its WebGPU on SwiftShader.
// A tiny generator is trained first (seconds), then the page adapts to a held-out passage and its
// answers, answer NLL and edit norm must agree with `seal adapt --json` on the same passage — the
// same kernels on two WebGPU implementations (Dawn on lavapipe here, Chromium's over SwiftShader).
// Any page error, console error or failed request fails the test. The screenshot is left in
// test-artifacts/playground.png.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PassageTrial } from '../../src/seal/adapt.ts';
import { CHROMIUM, openPage, waitForState } from '../../web/chromium.ts';
import { startServer } from '../../web/serve.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const work = join(root, 'runs', 'web-test');
const artifacts = join(root, 'test-artifacts');

/**
 * Tolerances between the two implementations: per-question answer NLL within 1e-4 nats and the
 * edit norm within 1e-5 relative (measured: 1e-6 and 1e-7; the kernels reduce in a fixed order on both, but the
 * compilers may fuse multiply-adds and use different exp/log); greedy answers identical.
 */
const NLL_TOL = 1e-4;
const NORM_RTOL = 1e-5;

const seal = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['bin/seal.js', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, `seal ${args[0]} failed:\n${r.stderr}`);
  return r.stdout;
};

/** The first `n` passages of a SQuAD split, as a file of their own. */
function firstPassages(split: string, n: number, out: string): void {
  const squad = JSON.parse(readFileSync(join(root, 'data', 'knowledge', `${split}.json`), 'utf8')) as { data: { paragraphs: unknown[] }[] };
  const kept: typeof squad.data = [];
  let count = 0;
  for (const article of squad.data) {
    const paragraphs = article.paragraphs.slice(0, n - count);
    count += paragraphs.length;
    if (paragraphs.length > 0) kept.push({ ...article, paragraphs });
  }
  writeFileSync(out, JSON.stringify({ ...squad, data: kept }));
}

function trainTinyGenerator(): string {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  firstPassages('rl-train', 4, join(work, 'train.json'));
  firstPassages('validation', 2, join(work, 'validation.json'));
  const rel = (f: string) => `runs/web-test/${f}`;
  const config = { data: { train: rel('train.json'), validation: rel('validation.json'), general: 'data/knowledge/general.txt' }, iterations: 2, batch: 2, validationCount: 2, evalEvery: 1, forgettingLines: 4 };
  writeFileSync(join(work, 'config.json'), JSON.stringify(config));
  seal('train', '--run', rel('run'), '--config', rel('config.json'));
  return rel('run/policy.safetensors');
}

const available = existsSync(CHROMIUM);
if (!available && process.env.CI) throw new Error(`${CHROMIUM} not found: CI installs it with \`bash scripts/setup.sh --browser\``);

(available ? test : test.skip)(`the page adapts to a held-out passage as \`seal adapt\` does (Chromium${available ? '' : ': not installed, `bash scripts/setup.sh --browser`'})`, async () => {
  const policy = trainTinyGenerator();
  firstPassages('held-out', 1, join(work, 'one.json'));
  const node = JSON.parse(seal('adapt', '--policy', policy, '--passages', 'runs/web-test/one.json', '--json').trim()) as PassageTrial;

  const { url, server } = await startServer(0);
  // passage=0.0: the first held-out passage, as the page's list names it (article.paragraph).
  const tab = await openPage(`${url}?policy=${encodeURIComponent(policy)}&passage=0.0`);
  try {
    assert.is(await waitForState(tab.page, 'status', ['ready', 'error', 'no-policy']), 'ready', `page not ready: ${await tab.page.textContent('#status')}; ${tab.errors.join('; ')}`);
    assert.match((await tab.page.textContent('#adapter'))!, /^adapter: /);
    await tab.page.click('#run');
    assert.is(await waitForState(tab.page, 'status', ['done', 'error']), 'done', `${await tab.page.textContent('#status')}; ${tab.errors.join('; ')}`);
    const page = JSON.parse((await tab.page.textContent('#result-json'))!) as PassageTrial;
    mkdirSync(artifacts, { recursive: true });
    await tab.page.screenshot({ path: join(artifacts, 'playground.png'), fullPage: true });
    // The same generator picked as a File: read through web/files.ts's File path, not fetch.
    await tab.page.setInputFiles('#policy-file', join(root, policy));
    assert.is(await waitForState(tab.page, 'status', ['ready', 'error']), 'ready', `picking a file: ${await tab.page.textContent('#status')}`);
    assert.is(await tab.page.inputValue('#policy'), 'picked:policy.safetensors');
    await tab.page.click('nav button[data-tab=report]');
    assert.match((await tab.page.textContent('#report-note'))!, /report/);

    assert.is(page.title, node.title);
    assert.is(page.questions.length, node.questions.length);
    assert.ok(page.questions.length > 0 && page.questions.every((q) => q.answer !== undefined), 'a held-out passage with reference answers');
    page.questions.forEach((q, i) => {
      const n = node.questions[i]!;
      assert.is(q.question, n.question);
      assert.is(q.base, n.base, `base answer to "${q.question}"`);
      assert.is(q.edited, n.edited, `edited answer to "${q.question}"`);
      for (const k of ['baseNll', 'editedNll'] as const) assert.ok(Math.abs(q[k]! - n[k]!) <= NLL_TOL, `${k} of "${q.question}": page ${q[k]} vs node ${n[k]}`);
    });
    assert.ok(Math.abs(page.nll.edited - node.nll.edited) <= NLL_TOL, `answer NLL: page ${page.nll.edited} vs node ${node.nll.edited}`);
    assert.ok(Math.abs(page.editNorm - node.editNorm) <= NORM_RTOL * node.editNorm, `edit norm: page ${page.editNorm} vs node ${node.editNorm}`);
    assert.ok(node.nll.edited < node.nll.base, 'the trained generator lowers the answer NLL');
    const worst = Math.max(...page.questions.flatMap((q, i) => [Math.abs(q.baseNll! - node.questions[i]!.baseNll!), Math.abs(q.editedNll! - node.questions[i]!.editedNll!)]));
    console.log(`page (${await tab.page.textContent('#adapter')}) vs node: max |Δ answer NLL| ${worst.toExponential(2)}, edit norm ${page.editNorm} vs ${node.editNorm}, ${page.ms.toFixed(0)} vs ${node.ms.toFixed(0)} ms`);
    assert.equal(tab.errors, []);
  } finally {
    await tab.close();
    server.close();
  }
});

test.run();
