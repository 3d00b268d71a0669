// Conversion between f32 and f16 storage: weights kept in half precision become f32 copies where
// they are edited or trained, and f32 weights become f16 ones when a model is stored that way.
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec, StorageType } from '../gpu/kernel.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expect, noAlias } from './check.ts';
import { elementsOf, rowChunks } from './chunks.ts';

const WG = 256;

/** `src` as a `dtype` tensor (into `out` when given); a fresh copy even when the dtype is the same. */
export function convert<D extends StorageType>(gpu: Gpu, src: Tensor<StorageType>, dtype: D, out?: Tensor<D>): Tensor<D> {
  const op = 'convert';
  expect(op, 'src', src, src.shape, src.dtype);
  const o = out ?? gpu.empty(src.shape, dtype, `${src.label}.${dtype}`);
  expect(op, 'out', o, src.shape, dtype);
  noAlias(op, o, src);
  if (src.dtype === dtype) {
    gpu.copy(src, o);
    return o;
  }
  const spec: KernelSpec = { shader: 'convert.wgsl', entry: 'convert', params: ['n:u32'], constants: { WG }, types: { src_t: src.dtype, dst_t: dtype } };
  // Ranges that fit both sides: f32 elements take twice the bytes of f16 ones.
  for (const r of rowChunks(gpu, src.size, [2, 4], `${op}: ${src}`)) {
    const n = r[1] - r[0];
    gpu.dispatch(spec, { params: { n }, tensors: [elementsOf(src, r), elementsOf(o, r)], workgroups: gpu.grid(n, WG) });
  }
  return o;
}
