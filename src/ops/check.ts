// Shape and dtype checks shared by every op wrapper: fail early, naming the op and the tensors.
import type { Gpu } from '../gpu/gpu.ts';
import { fmtShape, type DType, type F32, type Tensor } from '../gpu/tensor.ts';

export class ShapeError extends RangeError {
  override name = 'ShapeError';
}

/** Asserts a tensor's dtype and shape; -1 in `shape` matches any size. */
export function expect(op: string, what: string, t: Tensor, shape: readonly number[], dtype: DType = 'f32'): void {
  if (t.released) throw new Error(`${op}: ${what} was released`);
  if (t.dtype !== dtype) throw new TypeError(`${op}: ${what} must be ${dtype}, got ${t.dtype}`);
  const ok = t.shape.length === shape.length && shape.every((d, i) => d === -1 || d === t.shape[i]);
  if (!ok) throw new ShapeError(`${op}: ${what} must have shape ${fmtShape(shape.map((d) => (d === -1 ? '*' : d) as number))}, got ${fmtShape(t.shape)}`);
}

/** Asserts two tensors have the same dtype and shape. */
export function sameShape(op: string, a: Tensor, b: Tensor, names = ['a', 'b']): void {
  expect(op, names[1]!, b, a.shape, a.dtype);
}

/** WebGPU forbids a buffer bound as both written and read in one dispatch; say so by name. */
export function noAlias(op: string, out: Tensor, ...inputs: Tensor[]): void {
  for (const t of inputs) {
    if (t === out) throw new Error(`${op}: out must not be one of the inputs (${out}); use a separate tensor`);
  }
}

/** An op's output: a new f32 tensor shaped like `like`, or `out` once checked against that shape and for aliasing `like` or `inputs`. */
export function outputLike(gpu: Gpu, op: string, like: F32, out: F32 | undefined, ...inputs: F32[]): F32 {
  if (!out) return gpu.empty(like.shape);
  expect(op, 'out', out, like.shape);
  noAlias(op, out, like, ...inputs);
  return out;
}
