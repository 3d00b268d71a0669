// The autotune's choices on disk, one file per adapter: $SEAL_CACHE_DIR/autotune-<adapter-hash>.json
// (default ~/.cache/seal-webgpu), written atomically (temp file + rename). A corrupt file is
// ignored with a warning and rewritten; a file of a format version this code does not know (a newer
// seal-webgpu's) is ignored with a warning that names both versions, and left as it is.
// SEAL_AUTOTUNE=0 turns tuning off: callers then use their defaults.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TuningEntry, TuningStore } from '../gpu/autotune.ts';
import type { AdapterSummary } from '../gpu/device.ts';
import { FormatVersionError, readVersion } from '../util/format.ts';

/** The cache file layout written now (its `version` field). */
export const AUTOTUNE_VERSION = 1;

interface CacheFile {
  version: number;
  adapter: string;
  entries: Record<string, TuningEntry>;
}

export function autotuneEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.SEAL_AUTOTUNE !== '0';
}

/** A stable short id for an adapter and driver: a new driver version retunes. */
export function adapterHash(s: AdapterSummary): string {
  const id = [s.vendor, s.architecture, s.device, s.description, s.backend].join('|');
  return createHash('sha256').update(id).digest('hex').slice(0, 16);
}

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.SEAL_CACHE_DIR || join(homedir(), '.cache', 'seal-webgpu');
}

export class TuningCache implements TuningStore {
  readonly file: string;
  readonly #adapter: string;
  #entries: Record<string, TuningEntry>;
  /** False for another version's file: choices then stay in memory. */
  readonly #writable: boolean;

  constructor(summary: AdapterSummary, env: NodeJS.ProcessEnv = process.env, warn: (msg: string) => void = (m) => process.stderr.write(`seal-webgpu: ${m}\n`)) {
    this.file = join(cacheDir(env), `autotune-${adapterHash(summary)}.json`);
    this.#adapter = summary.description || summary.device;
    const r = read(this.file, warn);
    this.#entries = r.entries;
    this.#writable = r.writable;
  }

  get(key: string): TuningEntry | undefined {
    return this.#entries[key];
  }

  /** Records a choice and rewrites the file atomically. */
  set(key: string, entry: TuningEntry): void {
    this.#entries[key] = entry;
    if (!this.#writable) return;
    const data: CacheFile = { version: AUTOTUNE_VERSION, adapter: this.#adapter, entries: this.#entries };
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
    renameSync(tmp, this.file);
  }
}

function read(file: string, warn: (msg: string) => void): { entries: Record<string, TuningEntry>; writable: boolean } {
  const fresh = { entries: {}, writable: true };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return fresh; // no cache yet
  }
  let data: CacheFile;
  try {
    data = JSON.parse(text) as CacheFile;
  } catch (e) {
    warn(`ignoring corrupt autotune cache ${file}: ${(e as Error).message}`);
    return fresh;
  }
  try {
    if (data?.version !== undefined) readVersion(file, 'autotune cache', data.version, AUTOTUNE_VERSION);
  } catch (e) {
    if (!(e instanceof FormatVersionError)) throw e;
    warn(`ignoring ${e.message} (tuning again, kept in memory only)`);
    return { entries: {}, writable: false };
  }
  const ok =
    data?.version === AUTOTUNE_VERSION &&
    typeof data.entries === 'object' &&
    data.entries !== null &&
    Object.values(data.entries).every((e) => typeof e?.choice === 'string' && typeof e.ms === 'object');
  if (ok) return { entries: { ...data.entries }, writable: true };
  warn(`ignoring autotune cache ${file}: unexpected contents (it will be rewritten)`);
  return fresh;
}

/** The options autotuneMatmul takes in Node: this adapter's cache file, unless SEAL_AUTOTUNE=0. */
export function tuningFromEnv(summary: AdapterSummary, env: NodeJS.ProcessEnv = process.env): { enabled: boolean; store?: TuningStore } {
  return autotuneEnabled(env) ? { enabled: true, store: new TuningCache(summary, env) } : { enabled: false };
}
