// Row gather and its backward against the CPU reference; the backward adds into the gradient.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gatherRows, rowIndex, scatterRowsAdd } from '../../src/ops/rows.ts';
import * as ref from '../../src/reference/ops.ts';
import { gpu, numericGrad, releaseGpu, rng, sameBits } from '../helpers.ts';

test.after(releaseGpu);

test('gatherRows picks rows; scatterRowsAdd adds its gradient into dx (finite differences)', async () => {
  const g = await gpu();
  const r = rng(3);
  const [R, C] = [7, 5];
  const rows = [6, 0, 3];
  const x = r.uniformArray(R * C);
  const ix = rowIndex(g, rows, R);
  const tx = g.tensor(x, [1, R, C]);
  const out = gatherRows(g, tx, ix);
  assert.equal(out.shape, [3, C]);
  sameBits(await g.read(out), Float32Array.from(ref.gatherRows(x, C, rows)), 'gather');
  // d/dx of Σ w·gather(x), added into a prefilled dx.
  const w = r.uniformArray(rows.length * C);
  const pre = r.uniformArray(R * C);
  const dx = g.tensor(pre, [R, C]);
  const tw = g.tensor(w, [rows.length, C]);
  scatterRowsAdd(g, tw, ix, dx);
  const num = await numericGrad((xx) => ref.gatherRows(xx, C, rows).reduce((s, v, i) => s + v * w[i]!, 0), Float64Array.from(x));
  const got = await g.read(dx);
  got.forEach((v, i) => assert.ok(Math.abs(v - pre[i]! - num[i]!) < 1e-4, `dx[${i}]`));
  assert.throws(() => rowIndex(g, [1, 1], R), /row 1 is given twice/);
  assert.throws(() => rowIndex(g, [7], R), /row 7 is not a row of 7/);
  assert.throws(() => gatherRows(g, g.zeros([6, C]), ix), /does not have the index's 7 rows/);
  for (const t of [ix.idx, tx, out, dx, tw]) t.release();
});

test.run();
