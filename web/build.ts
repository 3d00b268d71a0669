// Bundles the playground page (web/main.ts) for the browser with esbuild: the same src/ modules
// Node runs, with the shaders bundled as text (the virtual module 'seal:shaders') and the two
// modules that touch the file system swapped for their browser side (web/files.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { SHADER_DIR } from '../src/io/shaders.ts';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
export const DIST = here('./dist/');

/** Node-side module → its browser side. */
const SWAPS = new Map([
  [here('../src/io/files.ts'), here('./files.ts')],
  [here('../src/io/atomic.ts'), here('./files.ts')],
]);

const browserSide: esbuild.Plugin = {
  name: 'seal-browser',
  setup(b) {
    b.onResolve({ filter: /^seal:shaders$/ }, () => ({ path: 'shaders', namespace: 'seal-shaders' }));
    b.onLoad({ filter: /.*/, namespace: 'seal-shaders' }, () => {
      const files = readdirSync(SHADER_DIR).filter((f) => f.endsWith('.wgsl'));
      const text = Object.fromEntries(files.map((f) => [f, readFileSync(join(SHADER_DIR, f), 'utf8')]));
      return { contents: `export default ${JSON.stringify(text)};`, loader: 'js', watchFiles: files.map((f) => join(SHADER_DIR, f)) };
    });
    b.onResolve({ filter: /\/(files|atomic)\.ts$/ }, (args) => {
      const swap = SWAPS.get(join(args.resolveDir, args.path));
      return swap ? { path: swap } : undefined;
    });
  },
};

/** Writes web/dist/app.js (and its source map); fails on any Node built-in left in the page's imports. */
export async function buildPage(): Promise<void> {
  await esbuild.build({
    entryPoints: [here('./main.ts')],
    outfile: join(DIST, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    minify: true,
    plugins: [browserSide],
    logLevel: 'warning',
  });
}
