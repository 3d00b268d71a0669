// The TS↔WGSL contract: uniform fields and tensor bindings agree, or a named error says where not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkContract, ContractError, entryContract } from '../../src/gpu/contract.ts';
import { shaderSource, type KernelSpec } from '../../src/gpu/kernel.ts';
import { diskShaders } from '../../src/io/shaders.ts';
import { gpu, releaseGpu } from '../helpers.ts';

test.after(releaseGpu);

const LAYERNORM: KernelSpec = { shader: 'layernorm.wgsl', entry: 'forward', params: ['N:u32', 'C:u32', 'eps:f32'] };
const code = (file: string) => shaderSource(file, diskShaders).code;

test('reads each entry point’s uniform fields and tensor count from the WGSL', () => {
  assert.equal(checkContract(LAYERNORM, code('layernorm.wgsl')), { params: ['N:u32', 'C:u32', 'eps:f32'], tensors: 6 });
  // Through the include; reduce_splits binds (partials, bias, C) and not matmul's bias at 4.
  const matmul = entryContract(code('matmul.wgsl'), 'regs');
  assert.is(matmul.params.length, 22);
  assert.is(matmul.tensors, 4);
  assert.is(entryContract(code('matmul.wgsl'), 'reduce_splits').tensors, 3);
  // Entry points of one file that reuse a binding number for different variables.
  assert.is(entryContract(code('crossentropy.wgsl'), 'backward').tensors, 5);
});

test('a swapped uniform field is a named error', () => {
  const swapped = { ...LAYERNORM, params: ['C:u32', 'N:u32', 'eps:f32'] };
  assert.throws(() => checkContract(swapped, code('layernorm.wgsl')), (e: Error) => e instanceof ContractError && /field 0 is 'N:u32' in the shader but 'C:u32' in the wrapper/.test(e.message));
  const retyped = { ...LAYERNORM, params: ['N:u32', 'C:u32', 'eps:u32'] };
  assert.throws(() => checkContract(retyped, code('layernorm.wgsl')), /field 2 is 'eps:f32' in the shader but 'eps:u32'/);
  assert.throws(() => checkContract({ ...LAYERNORM, params: ['N:u32', 'C:u32'] }, code('layernorm.wgsl')), /field 2 is 'eps:f32' in the shader but '\(none\)'/);
});

test('bindings: a gap, a shared number and an unknown entry are named errors', () => {
  const src = (b: number) => `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(${b}) var<storage, read_write> out: array<f32>;
fn main() { out[0] = x[p.n]; }`;
  assert.is(entryContract(src(2), 'main').tensors, 2);
  assert.throws(() => entryContract(src(3), 'main'), /binding 2 is unused/);
  assert.throws(() => entryContract(src(1), 'main'), /'x' and 'out' both use binding 1/);
  assert.throws(() => entryContract(src(2), 'nope'), /no entry point 'nope'/);
});

test('the runtime checks the contract when a kernel is dispatched', async () => {
  const g = await gpu();
  const x = g.zeros([8]);
  const swapped: KernelSpec = { shader: 'elementwise.wgsl', entry: 'scale', params: ['alpha:f32', 'n:u32'] };
  assert.throws(() => g.dispatch(swapped, { params: { n: 8, alpha: 1 }, tensors: [x, x], workgroups: [1] }), (e: Error) => e instanceof ContractError);
  const scale: KernelSpec = { shader: 'elementwise.wgsl', entry: 'scale', params: ['n:u32', 'alpha:f32'] };
  assert.throws(() => g.dispatch(scale, { params: { n: 8, alpha: 1 }, tensors: [x], workgroups: [1] }), /binds 2 tensors .* passed 1/);
  // Nothing was encoded by the refused calls: the batch stays valid.
  const y = g.zeros([8]);
  g.dispatch(scale, { params: { n: 8, alpha: 2 }, tensors: [x, y], workgroups: [1] });
  assert.equal(await g.read(y), new Float32Array(8));
  x.release();
  y.release();
});

test.run();
