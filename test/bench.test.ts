// `seal bench --json`: every row has the stable schema, ours carry their fraction of the ceiling
// measured in the same run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runBench, type BenchRow } from '../bench/index.ts';

test('bench --json rows: { name, kind, shape, ms, gflops, adapter }, ours with ceilingFraction', async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => lines.push(s);
  try {
    await runBench({ json: true, quick: true, filter: '256³' });
  } finally {
    console.log = log;
  }
  const rows = lines.map((l) => JSON.parse(l) as BenchRow);
  const ceiling = rows.filter((r) => r.kind === 'ceiling');
  assert.is(ceiling.length, 1);
  for (const r of rows) {
    assert.ok(['ours', 'peer', 'ceiling'].includes(r.kind), r.name);
    for (const k of ['name', 'shape', 'adapter'] as const) assert.type(r[k], 'string');
    assert.ok(r.ms > 0 && r.gflops > 0, `${r.name}: positive figures`);
  }
  const ours = rows.filter((r) => r.kind === 'ours');
  assert.ok(ours.length >= 4, 'our variants at 256³');
  for (const r of ours) assert.ok(Math.abs(r.ceilingFraction! - r.gflops / ceiling[0]!.gflops) < 1e-12, `${r.name} fraction of this run's ceiling`);
  assert.ok(rows.some((r) => r.kind === 'peer'), 'plain JS ran');
});

test.run();
