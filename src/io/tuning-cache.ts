// The autotune's choices on disk, one file per adapter: $SEAL_CACHE_DIR/autotune-<adapter-hash>.json
// (default ~/.cache/seal-webgpu), written atomically (temp file + rename). A corrupt file is
// ignored with a warning. SEAL_AUTOTUNE=0 turns tuning off: callers then use their defaults.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TuningEntry, TuningStore } from '../gpu/autotune.ts';
import type { AdapterSummary } from '../gpu/device.ts';

const VERSION = 1;

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

  constructor(summary: AdapterSummary, env: NodeJS.ProcessEnv = process.env, warn: (msg: string) => void = (m) => process.stderr.write(`seal-webgpu: ${m}\n`)) {
    this.file = join(cacheDir(env), `autotune-${adapterHash(summary)}.json`);
    this.#adapter = summary.description || summary.device;
    this.#entries = read(this.file, warn);
  }

  get(key: string): TuningEntry | undefined {
    return this.#entries[key];
  }

  /** Records a choice and rewrites the file atomically. */
  set(key: string, entry: TuningEntry): void {
    this.#entries[key] = entry;
    const data: CacheFile = { version: VERSION, adapter: this.#adapter, entries: this.#entries };
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
    renameSync(tmp, this.file);
  }
}

function read(file: string, warn: (msg: string) => void): Record<string, TuningEntry> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {}; // no cache yet
  }
  try {
    const data = JSON.parse(text) as CacheFile;
    const ok =
      data?.version === VERSION &&
      typeof data.entries === 'object' &&
      data.entries !== null &&
      Object.values(data.entries).every((e) => typeof e?.choice === 'string' && typeof e.ms === 'object');
    if (ok) return { ...data.entries };
    warn(`ignoring autotune cache ${file}: unexpected contents (it will be rewritten)`);
  } catch (e) {
    warn(`ignoring corrupt autotune cache ${file}: ${(e as Error).message}`);
  }
  return {};
}

/** The options autotuneMatmul takes in Node: this adapter's cache file, unless SEAL_AUTOTUNE=0. */
export function tuningFromEnv(summary: AdapterSummary, env: NodeJS.ProcessEnv = process.env): { enabled: boolean; store?: TuningStore } {
  return autotuneEnabled(env) ? { enabled: true, store: new TuningCache(summary, env) } : { enabled: false };
}
