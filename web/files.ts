// The browser's side of src/io/files.ts and src/io/atomic.ts (web/build.ts swaps them in): paths
// are URLs on the page's server, read with fetch, or names of files the user picked (`provide`).
// Nothing is written from a page.
import type { ByteSource } from '../src/io/files.ts';
import type * as NodeFiles from '../src/io/files.ts';
import type * as NodeAtomic from '../src/io/atomic.ts';
import { UserError } from '../src/util/errors.ts';

const picked = new Map<string, Blob>();

/** Makes a File the user picked readable under `name` (e.g. "picked:policy.safetensors"). */
export function provide(name: string, blob: Blob): void {
  picked.set(name, blob);
}

async function blobOf(path: string): Promise<Blob> {
  const own = picked.get(path);
  if (own) return own;
  const res = await fetch(path);
  if (!res.ok) throw Object.assign(new Error(`${path}: HTTP ${res.status} ${res.statusText}`), { code: res.status === 404 ? 'ENOENT' : `HTTP ${res.status}` });
  return res.blob();
}

/** Bytes held in memory as one ByteSource: a fetched file, or a File. */
export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.length,
    async read(length, position) {
      if (position + length > bytes.length) throw new Error(`read ${Math.max(0, bytes.length - position)} of ${length} bytes at offset ${position}`);
      return bytes.slice(position, position + length);
    },
    close: async () => {},
  };
}

export async function openBytes(path: string): Promise<ByteSource> {
  return bytesSource(path, new Uint8Array(await (await blobOf(path)).arrayBuffer()));
}

export const readText = async (path: string): Promise<string> => (await blobOf(path)).text();

export const isDirectory = async (path: string): Promise<boolean> => {
  await blobOf(path); // a missing file still rejects, as in Node
  return false;
};

export const exists = (path: string): Promise<boolean> =>
  picked.has(path) ? Promise.resolve(true) : fetch(path, { method: 'HEAD' }).then((r) => r.ok, () => false);

const readOnly = async (): Promise<never> => {
  throw new UserError('a page cannot write files: run this from the seal command instead');
};
export const makeDirectory = readOnly;
export const writeFileAtomic = readOnly;

export const joinPath = (...parts: string[]): string => parts.filter(Boolean).join('/').replace(/\/{2,}/g, '/');
export const parentPath = (path: string): string => (path.includes('/') ? path.slice(0, path.lastIndexOf('/')) || '/' : '.');

/** The package's data/ as the page's server serves it (web/serve.ts). */
export const bundled = (file: string): string => `data/${file}`;

// The same names and signatures as the Node modules this one replaces.
({ openBytes, readText, isDirectory, exists, makeDirectory, joinPath, parentPath, bundled }) satisfies typeof NodeFiles;
({ writeFileAtomic }) satisfies typeof NodeAtomic;
