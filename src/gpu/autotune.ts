// Per-adapter autotune: a short measurement picks one of a few kernel variants per shape class.
// Choices are kept in a TuningStore: in Node a file per adapter (io/tuning-cache.ts), so later runs
// skip the measurement; in memory otherwise.

export interface TuningEntry {
  choice: string;
  /** Measured ms per candidate, for reports. */
  ms: Record<string, number>;
}

/** Where choices are kept, by key (a Map will do). */
export interface TuningStore {
  get(key: string): TuningEntry | undefined;
  set(key: string, entry: TuningEntry): unknown;
}

/** Times every candidate (best of `reps`) and returns the fastest; ties go to the earlier one. */
export async function fastest(candidates: readonly string[], time: (candidate: string) => Promise<number>, reps = 3): Promise<TuningEntry> {
  if (candidates.length === 0) throw new Error('autotune: no candidates');
  const ms: Record<string, number> = {};
  for (const c of candidates) {
    let best = Infinity;
    for (let r = 0; r < reps; r++) best = Math.min(best, await time(c));
    ms[c] = best;
  }
  const choice = candidates.reduce((a, b) => (ms[b]! < ms[a]! ? b : a));
  return { choice, ms };
}
