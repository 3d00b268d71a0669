import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gelu, geluBackward } from '../../src/ops/elementwise.ts';
import * as ref from '../../src/reference/ops.ts';
import { close, gpu, numericGrad, releaseGpu, rng } from '../helpers.ts';

test.after(releaseGpu);

test('CPU backward matches finite differences of the CPU forward (f64)', async () => {
  const r = rng(1);
  const x = Float64Array.from([...r.uniformArray(20, -4, 4), 0, -0.5, 6]);
  const dout = r.uniformArray(x.length);
  const loss = (v: ArrayLike<number>) => ref.gelu(v).reduce((s, o, i) => s + o * dout[i]!, 0);
  close(ref.geluBackward(x, dout), await numericGrad(loss, x), 1e-7, 1e-9, 'dinp');
});

test('forward and backward match the CPU reference, including far tails', async () => {
  const g = await gpu();
  const r = rng(2);
  for (const n of [1, 3, 255, 257, 1000]) {
    const x = r.uniformArray(n, -6, 6);
    x[0] = n === 1 ? 0 : -100;
    if (n > 1) x[1] = 100;
    const dout = r.uniformArray(n);
    const [tx, td] = [g.tensor(x), g.tensor(dout)];
    const [y, dx] = await g.readMany([gelu(g, tx), geluBackward(g, tx, td)]);
    close(y!, ref.gelu(x), 1e-5, 1e-7, `gelu n=${n}`);
    close(dx!, ref.geluBackward(x, dout), 1e-5, 1e-7, `geluBackward n=${n}`);
  }
});

test('NaN propagates; shapes and aliasing are checked', async () => {
  const g = await gpu();
  const x = g.tensor(Float32Array.from([NaN, 1]));
  const [y, dx] = await g.readMany([gelu(g, x), geluBackward(g, x, g.tensor(Float32Array.from([1, 1])))]);
  assert.ok(Number.isNaN(y![0]) && Number.isNaN(dx![0]) && Number.isFinite(y![1]));
  assert.throws(() => geluBackward(g, x, g.zeros([3])), /geluBackward: dout must have shape \[2\], got \[3\]/);
  assert.throws(() => gelu(g, x, x), /out must not be one of the inputs/);
});

test.run();
