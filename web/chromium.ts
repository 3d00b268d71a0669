// Debian's Chromium, headless with WebGPU, driven by playwright-core: for the page's test and the
// Node-vs-page benchmark. On a machine without a GPU its WebGPU adapter is SwiftShader.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';

/** Installed by `bash scripts/setup.sh --browser`; SEAL_CHROMIUM names another build. */
export const CHROMIUM = process.env.SEAL_CHROMIUM || '/usr/bin/chromium';

const FLAGS = [
  '--no-sandbox', // running as root in CI
  '--enable-unsafe-webgpu', // WebGPU is not enabled by default on Linux
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export interface OpenPage {
  page: Page;
  /** Page errors, console errors and failed requests, as they happen. */
  errors: string[];
  close(): Promise<void>;
}

/** A fresh profile, one page; everything the page reports as an error is collected. */
export async function openPage(url: string): Promise<OpenPage> {
  const profile = mkdtempSync(join(tmpdir(), 'seal-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
  });
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  await page.goto(url);
  return {
    page,
    errors,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Waits until the element's data-state is one of `states` (the page sets it), and returns it. */
export async function waitForState(page: Page, id: string, states: readonly string[], timeout = 180_000): Promise<string> {
  await page.waitForFunction(([el, s]) => s.includes(document.getElementById(el)?.dataset.state ?? ''), [id, states] as const, { timeout });
  return (await page.getAttribute(`#${id}`, 'data-state'))!;
}
