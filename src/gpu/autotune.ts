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

/**
 * Times the candidates in interleaved rounds (a burst of load then hits all alike) and returns the
 * one with the lowest median: on a shared machine single samples are skewed both ways (stalls, and
 * timer or scheduling luck), so neither a mean nor the best sample is safe. A candidate over `prune`×
 * the best of the first round is dropped after it (clearly slower; saves the slow kernels' time).
 * Ties go to the earlier candidate.
 */
export async function fastest(candidates: readonly string[], time: (candidate: string) => Promise<number>, reps = 7, prune = 3): Promise<TuningEntry> {
  if (candidates.length === 0) throw new Error('autotune: no candidates');
  const samples = new Map<string, number[]>(candidates.map((c) => [c, []]));
  for (const c of candidates) samples.get(c)!.push(await time(c));
  const first = Math.min(...candidates.map((c) => samples.get(c)![0]!));
  const kept = candidates.filter((c) => samples.get(c)![0]! <= prune * first);
  for (let r = 1; r < reps; r++) for (const c of kept) samples.get(c)!.push(await time(c));
  const ms: Record<string, number> = {};
  for (const c of candidates) ms[c] = median(samples.get(c)!);
  const choice = kept.reduce((a, b) => (ms[b]! < ms[a]! ? b : a));
  return { choice, ms };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}
