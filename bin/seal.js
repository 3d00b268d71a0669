#!/usr/bin/env node
// The `seal` command. In a clone it runs the TypeScript sources through tsx, so no build step stands
// between a clone and a run; an installed package has no sources, only the compiled dist/.
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else {
  await import('../dist/src/cli/main.js');
}
