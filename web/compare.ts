// Node vs the page on this machine, in one run: bench/portable.ts (matmul GFLOP/s, the model's
// tokens/s) on Dawn in Node, then in the playground page in headless Chromium, then in Node again
// (the two Node runs bracket the page's, so load from elsewhere shows as their spread). Prints a
// markdown table naming both adapters, and leaves a screenshot of the Benchmarks tab in
// test-artifacts/bench.png.
// Run: npm run web:compare   (needs chromium: bash scripts/setup.sh --browser)
import { mkdirSync } from 'node:fs';
import { portableBench, type PortableRow } from '../bench/portable.ts';
import { dawnGpu } from '../src/io/dawn.ts';
import { loadModel } from '../src/model/load.ts';
import { openPage, waitForState } from './chromium.ts';
import { startServer } from './serve.ts';

async function inNode(): Promise<{ adapter: string; rows: PortableRow[] }> {
  const gpu = await dawnGpu();
  try {
    const { model } = await loadModel(gpu, 'data/base.safetensors');
    const rows = await portableBench(gpu, model);
    model.release();
    const s = gpu.summary;
    return { adapter: `Dawn, ${s.description || s.device} [${s.backend}]`, rows };
  } finally {
    gpu.destroy();
  }
}

async function inPage(): Promise<{ adapter: string; rows: PortableRow[] }> {
  const { url, server } = await startServer(0);
  const tab = await openPage(url);
  try {
    await tab.page.click('nav button[data-tab=bench]');
    await tab.page.click('#bench-run');
    const state = await waitForState(tab.page, 'bench-status', ['done', 'error'], 600_000);
    if (state !== 'done' || tab.errors.length) throw new Error(`the page's benchmark failed: ${await tab.page.textContent('#bench-status')} ${tab.errors.join('; ')}`);
    mkdirSync('test-artifacts', { recursive: true });
    await tab.page.screenshot({ path: 'test-artifacts/bench.png', fullPage: true });
    const out = JSON.parse((await tab.page.textContent('#bench-json'))!) as { adapter: string; rows: PortableRow[] };
    const version = tab.page.context().browser()?.version() ?? '';
    return { adapter: `Chromium ${version}, ${out.adapter.replace(/^adapter: /, '')}`, rows: out.rows };
  } finally {
    await tab.close();
    server.close();
  }
}

const first = await inNode();
const page = await inPage();
const second = await inNode();
console.log(`Node: ${first.adapter}\npage: ${page.adapter}\n`);
console.log('| case | unit | Node (two runs) | page | page / Node |\n| --- | --- | ---: | ---: | ---: |');
page.rows.forEach((p, i) => {
  const [a, b] = [first.rows[i]!.value, second.rows[i]!.value];
  const node = (a + b) / 2;
  console.log(`| ${p.case} | ${p.unit} | ${a.toFixed(1)}, ${b.toFixed(1)} | ${p.value.toFixed(1)} | ${(p.value / node).toFixed(2)} |`);
});
