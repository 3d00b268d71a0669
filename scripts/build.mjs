// Builds the package: the TypeScript sources (src/, and bench/ for `seal bench`) compiled to
// JavaScript with .d.ts files under dist/, and the files the code reads at run time (shaders/,
// data/) copied beside them, at the same place relative to the compiled modules as to the sources.
// `npm run build`, and `npm pack` runs it (prepack); a clone runs the sources through tsx and needs no build.
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
rmSync(`${root}dist`, { recursive: true, force: true });
// npm run puts node_modules/.bin on the PATH.
execFileSync('tsc', ['-p', `${root}tsconfig.build.json`], { stdio: 'inherit', shell: process.platform === 'win32' });
for (const dir of ['shaders', 'data']) cpSync(`${root}${dir}`, `${root}dist/${dir}`, { recursive: true });
console.log('built dist/');
