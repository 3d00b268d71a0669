// WGSL sources from shaders/ on disk, for Node (the browser build bundles them as text instead:
// web/build.ts). The folder is found from this module's own location, so it works from a clone and
// from an installed package alike.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHADER_DIR = fileURLToPath(new URL('../../shaders/', import.meta.url));

export function diskShaders(file: string): string {
  try {
    return readFileSync(join(SHADER_DIR, file), 'utf8');
  } catch {
    throw new Error(`shader '${file}' not found in ${SHADER_DIR}`);
  }
}
