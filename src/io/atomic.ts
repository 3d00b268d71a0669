// Atomic file writes: a reader (or a crash) sees either the old file or the complete new one, never
// a half-written one. Used for safetensors files, datasets and checkpoints.
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type FileData = string | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/**
 * Writes to a temporary file in the same directory (rename is only atomic within one file system),
 * fsyncs it, then renames it over `path`. On any failure the temporary file is removed and `path`
 * is left as it was. Chunks are written in order without being concatenated first.
 */
export async function writeFileAtomic(path: string, data: FileData): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx');
  try {
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) {
        await fh.writeFile(data);
      } else {
        for await (const chunk of data) await fh.write(chunk);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await syncDirectory(dir);
}

/** Makes the rename itself durable; some platforms cannot open a directory for fsync, which is fine. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // Not supported here (e.g. Windows): the data itself was fsynced before the rename.
  }
}
