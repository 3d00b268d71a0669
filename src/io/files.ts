// File access for everything below the CLI, through Node's file system. The browser build swaps
// this module for web/files.ts (fetch and File), which exports the same names; nothing else below
// the CLI touches the file system, so the runtime bundles for a page unchanged.
import { open, readFile, stat, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bytes read by range, so a large checkpoint is never held whole (safetensors.ts). */
export interface ByteSource {
  /** For messages: the path or URL. */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `position` in a fresh buffer (typed-array views over it start aligned). */
  read(length: number, position: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

export async function openBytes(path: string): Promise<ByteSource> {
  const fh = await open(path, 'r');
  const size = (await fh.stat()).size;
  return {
    name: path,
    size,
    async read(length, position) {
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      if (done < length) throw new Error(`read ${done} of ${length} bytes at offset ${position}`);
      return buf;
    },
    close: () => fh.close(),
  };
}

export const readText = (path: string): Promise<string> => readFile(path, 'utf8');

/** Whether `path` is a directory; a path that cannot be opened rejects with Node's error (its `code`). */
export const isDirectory = async (path: string): Promise<boolean> => (await stat(path)).isDirectory();

export const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

export const makeDirectory = async (path: string): Promise<void> => {
  await mkdir(path, { recursive: true });
};

export const joinPath = (...parts: string[]): string => join(...parts);
export const parentPath = (path: string): string => dirname(path);

// The files the package ships beside its code, under data/: the tiny base model, the knowledge
// dataset, the baselines' tuned settings. Found from this module's own URL, so an installed package
// reads its own copy from any working directory: ../../data from src/io/ in a clone, and the build
// copies data/ to the same place relative to dist/src/io/.
const DATA = fileURLToPath(new URL('../../data/', import.meta.url));

/**
 * A bundled file, e.g. bundled('base.safetensors'). Written relative to the working directory when
 * it lies below it (in a clone: 'data/base.safetensors', as the docs and saved configs have it).
 */
export function bundled(file: string): string {
  const abs = join(DATA, file);
  const rel = relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}
