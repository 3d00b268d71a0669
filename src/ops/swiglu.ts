// SwiGLU: out = silu(gate)·up. Its backward returns fresh dgate and dup (the gradient convention).
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/kernel.ts';
import type { F32 as Tensor } from '../gpu/tensor.ts';
import { expect, sameShape } from './check.ts';

const WG = 256;
const spec = (entry: string): KernelSpec => ({ shader: 'swiglu.wgsl', entry, params: ['n:u32'], constants: { WG } });
const FORWARD = spec('forward');
const BACKWARD = spec('backward');

export function swiglu(gpu: Gpu, gate: Tensor, up: Tensor): Tensor {
  expect('swiglu', 'gate', gate, gate.shape);
  sameShape('swiglu', gate, up, ['gate', 'up']);
  const out = gpu.empty(gate.shape);
  gpu.dispatch(FORWARD, { params: { n: gate.size }, tensors: [gate, up, out], workgroups: gpu.grid(gate.size, WG) });
  return out;
}

export function swigluBackward(gpu: Gpu, gate: Tensor, up: Tensor, dout: Tensor): { dgate: Tensor; dup: Tensor } {
  expect('swigluBackward', 'gate', gate, gate.shape);
  sameShape('swigluBackward', gate, up, ['gate', 'up']);
  sameShape('swigluBackward', gate, dout, ['gate', 'dout']);
  const dgate = gpu.empty(gate.shape);
  const dup = gpu.empty(gate.shape);
  gpu.dispatch(BACKWARD, { params: { n: gate.size }, tensors: [gate, up, dout, dgate, dup], workgroups: gpu.grid(gate.size, WG) });
  return { dgate, dup };
}
