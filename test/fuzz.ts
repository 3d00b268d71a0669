// Seeded mutations of valid files for the reader fuzz tests: byte-level (truncations, flipped
// bytes, inserted and deleted runs) and structural (a JSON value somewhere replaced, removed or
// duplicated). Each case says what it did, so a failure can be replayed from its seed.
import * as assert from 'uvu/assert';
import { Rng } from '../src/util/random.ts';
import { UserError } from '../src/util/errors.ts';

export interface Mutant {
  what: string;
  bytes: Uint8Array;
}

/** Values that break assumptions: wrong types, huge and negative numbers, prototype names. */
export const NASTY_VALUES: readonly unknown[] = [
  null, true, 0, -1, 1.5, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 2 ** 64, 1e308, -1e308, '', 'x', '__proto__', 'toString', 'constructor',
  [], [0], [-1], [2 ** 53, 2 ** 53], [1, 2, 3], {}, { a: 1 },
];

/** One byte-level mutation of `bytes`; `hot` bytes at the start (a header) are hit more often. */
export function mutateBytes(rng: Rng, bytes: Uint8Array, hot = bytes.length): Mutant {
  const at = (n: number) => (rng.next() < 0.5 ? rng.int(Math.max(1, Math.min(hot, n))) : rng.int(Math.max(1, n)));
  switch (rng.int(4)) {
    case 0: {
      const n = rng.int(bytes.length);
      return { what: `truncated to ${n} bytes`, bytes: bytes.slice(0, n) };
    }
    case 1: {
      const out = new Uint8Array(bytes); // a copy (a Buffer's slice() would be a view)
      const flips = 1 + rng.int(8);
      for (let i = 0; i < flips; i++) {
        const j = at(out.length);
        out[j] = out[j]! ^ (1 << rng.int(8));
      }
      return { what: `${flips} bits flipped`, bytes: out };
    }
    case 2: {
      const i = at(bytes.length);
      const run = Uint8Array.from({ length: 1 + rng.int(16) }, () => rng.int(256));
      return { what: `${run.length} random bytes inserted at ${i}`, bytes: Buffer.concat([bytes.subarray(0, i), run, bytes.subarray(i)]) };
    }
    default: {
      const i = at(bytes.length);
      const n = 1 + rng.int(16);
      return { what: `${n} bytes deleted at ${i}`, bytes: Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + n)]) };
    }
  }
}

/** A deep copy of `value` with one place in it replaced by a nasty value, removed, or duplicated. */
export function mutateJson(rng: Rng, value: unknown): { what: string; value: unknown } {
  const copy = structuredClone(value);
  const places: [Record<string | number, unknown>, string | number, string][] = [];
  const walk = (v: unknown, path: string) => {
    if (typeof v !== 'object' || v === null) return;
    for (const [k, child] of Object.entries(v)) {
      const key = Array.isArray(v) ? Number(k) : k;
      const p = `${path}${Array.isArray(v) ? `[${k}]` : `.${k}`}`;
      places.push([v as Record<string | number, unknown>, key, p]);
      walk(child, p);
    }
  };
  walk(copy, '');
  if (places.length === 0) return { what: 'whole value replaced', value: rng.pick(NASTY_VALUES) };
  const [parent, key, path] = rng.pick(places);
  const r = rng.next();
  if (r < 0.6) {
    const nasty = structuredClone(rng.pick(NASTY_VALUES));
    parent[key] = nasty;
    return { what: `${path} = ${JSON.stringify(nasty)}`, value: copy };
  }
  if (r < 0.8) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
    return { what: `${path} removed`, value: copy };
  }
  if (Array.isArray(parent)) parent.push(structuredClone(parent[key as number]));
  else parent[`${String(key)}_copy`] = structuredClone(parent[key]);
  return { what: `${path} duplicated`, value: copy };
}

export interface FuzzTally {
  loaded: number;
  refused: number;
  slowestMs: number;
}

/**
 * Runs every case: each must load or fail with a user error (the family the CLI prints as one
 * line), within `maxMs`. Anything else fails the test, naming the case.
 */
export async function fuzz(cases: Iterable<{ what: string; run: () => Promise<unknown> }>, maxMs: number): Promise<FuzzTally> {
  const tally: FuzzTally = { loaded: 0, refused: 0, slowestMs: 0 };
  for (const c of cases) {
    const t0 = performance.now();
    try {
      await c.run();
      tally.loaded++;
    } catch (e) {
      if (!(e instanceof UserError)) assert.unreachable(`${c.what}: ${(e as Error).stack}`);
      tally.refused++;
    }
    const ms = performance.now() - t0;
    tally.slowestMs = Math.max(tally.slowestMs, ms);
    assert.ok(ms < maxMs, `${c.what}: took ${ms.toFixed(0)} ms`);
  }
  return tally;
}
