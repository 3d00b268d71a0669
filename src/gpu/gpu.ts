// The runtime: tensors, a pipeline cache, batched dispatch into one command buffer, explicit readback.
import { acquireDevice, GpuUnavailableError, releaseInstance, type AdapterSummary, type DeviceOptions } from './device.ts';
import { Tensor, BYTES_PER_ELEMENT, checkShape, copySize, fmtShape, numel, type DType, type TypedArrayFor } from './tensor.ts';
import { checkContract, ContractError } from './contract.ts';
import { BufferPool, type PoolStats } from './pool.ts';
import { kernelKey, packParams, paramBytes, shaderSource, type KernelSpec, type ParamValues, type ShaderReader } from './kernel.ts';

export class GpuError extends Error {
  override name = 'GpuError';
}

export interface DispatchArgs {
  params?: ParamValues;
  /** Bound at bindings 1, 2, ... (binding 0 is the uniform block). */
  tensors: readonly Tensor[];
  /** Workgroup counts; each must be within maxComputeWorkgroupsPerDimension (see grid()). */
  workgroups: readonly [number, number?, number?];
  /** Shown in profiles and error messages. */
  label?: string;
}

export interface ProfileEntry {
  label: string;
  ms: number;
}

const UNIFORM_CHUNK = 64 * 1024;
const PROFILE_CAPACITY = 2048;

type TypedArray = Float32Array | Uint16Array | Uint32Array | Int32Array;

export class Gpu {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly summary: AdapterSummary;
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
  readonly shaders: ShaderReader;
  /** The most bytes one storage binding may hold: the adapter's limit, or a lower one for tests (DeviceOptions.maxBinding). */
  readonly bindingLimit: number;
  /** How models made on this Gpu store their weight matrices (DeviceOptions.dtype; default f32). */
  readonly weightDtype: 'f32' | 'f16';
  /** Bytes of memory the adapter can give models, when known (DeviceOptions.availableMemory); null: unknown. */
  readonly availableMemory: number | null;
  #instance: GPU | null;
  #lost: GPUDeviceLostInfo | null = null;
  #destroyed = false;

  #modules = new Map<string, GPUShaderModule>();
  #pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  /** Tensors each kernel binds, once its contract with the wrapper is checked. */
  #contracts = new Map<string, number>();

  // The open batch: one encoder, one compute pass, uniforms staged for one write per chunk at submit.
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #dispatches = 0;
  #chunks: { buffer: GPUBuffer; staging: DataView }[] = [];
  #chunkIndex = 0;
  #chunkUsed = 0;
  #afterSubmit: GPUBuffer[] = [];
  #pool: BufferPool;
  #retireScheduled = false;
  // Submits made, and how many of them a sync or read has seen finish.
  #submitted = 0;
  #finished = 0;
  #constants = new Map<number, Tensor<'f32'>>();
  #errorChecks: Promise<GPUError | null>[] = [];
  #uncaptured: GPUError[] = [];

  #live = new Set<Tensor>();
  #liveBytes = 0;
  #nextId = 0;

  // Optional GPU timestamps per dispatch.
  #profiling = false;
  #querySet: GPUQuerySet | null = null;
  #profileLabels: string[] = [];
  #profileResults: Promise<ProfileEntry[]>[] = [];

  private constructor(instance: GPU, adapter: GPUAdapter, device: GPUDevice, summary: AdapterSummary, shaders: ShaderReader, pool: boolean, opts: DeviceOptions) {
    this.#instance = instance;
    this.shaders = shaders;
    this.adapter = adapter;
    this.device = device;
    this.summary = summary;
    this.limits = device.limits;
    this.features = new Set(device.features as unknown as Iterable<string>);
    this.bindingLimit = Math.min(this.limits.maxStorageBufferBindingSize, opts.maxBinding ?? Infinity);
    this.weightDtype = opts.dtype ?? 'f32';
    this.availableMemory = opts.availableMemory?.(summary) ?? null;
    this.#pool = new BufferPool(device, pool);
    // Errors outside a batch (e.g. allocation) surface at the next sync or read.
    device.onuncapturederror = (e) => this.#uncaptured.push(e.error);
    device.lost.then((info) => {
      this.#lost = info;
      if (info.reason !== 'destroyed') console.error(`seal-webgpu: GPU device lost: ${info.message}`);
    });
  }

  /**
   * Acquires an adapter and device from `opts.gpu` (navigator.gpu, or Dawn: io/dawn.ts's dawnGpu
   * in Node); kernels come from `opts.shaders`. `pool` (default on) reuses tensor buffers instead
   * of creating one per tensor.
   */
  static async create(opts: DeviceOptions & { shaders: ShaderReader; pool?: boolean }): Promise<Gpu> {
    const { gpu, adapter, device, summary } = await acquireDevice(opts);
    const g = new Gpu(gpu, adapter, device, summary, opts.shaders, opts.pool ?? true, opts);
    if (g.weightDtype === 'f16' && !g.features.has('shader-f16')) {
      g.destroy();
      throw new GpuUnavailableError(`--dtype f16 needs the adapter feature shader-f16, which ${summary.description || 'this adapter'} lacks (see seal doctor); use --dtype f32`);
    }
    return g;
  }

  // ---- tensors ----------------------------------------------------------------------------------

  get liveTensors(): number {
    return this.#live.size;
  }
  get liveBytes(): number {
    return this.#liveBytes;
  }
  /** Tensor buffers created so far, and the bytes the pool holds for reuse. */
  get poolStats(): PoolStats {
    return this.#pool.stats;
  }
  /** Destroys the pooled buffers that are free now; returns the bytes released. */
  trim(): number {
    return this.#pool.trim();
  }
  /** The most bytes of tensor buffers held at once (live, pooled or waiting) since creation or resetPeak(). */
  get peakBytes(): number {
    return this.#pool.stats.peakHeldBytes;
  }
  /** Starts the peak over from the bytes held now. */
  resetPeak(): void {
    this.#pool.resetPeak();
  }
  /** Labels of live tensors, for leak reports. */
  liveLabels(): string[] {
    return [...this.#live].map((t) => t.toString());
  }

  empty<D extends DType = 'f32'>(shape: readonly number[], dtype: D = 'f32' as D, label?: string): Tensor<D> {
    return this.#alloc(shape, dtype, label, undefined);
  }

  zeros<D extends DType = 'f32'>(shape: readonly number[], dtype: D = 'f32' as D, label?: string): Tensor<D> {
    return this.#alloc(shape, dtype, label, undefined, true);
  }

  /** A tensor holding `data`; a Float32Array gives f32, Uint32Array u32, Int32Array i32. */
  tensor(data: Float32Array | number[], shape?: readonly number[], dtype?: 'f32', label?: string): Tensor<'f32'>;
  tensor(data: Uint32Array, shape?: readonly number[], dtype?: 'u32', label?: string): Tensor<'u32'>;
  tensor(data: Int32Array, shape?: readonly number[], dtype?: 'i32', label?: string): Tensor<'i32'>;
  tensor(data: Uint16Array, shape?: readonly number[], dtype?: 'f16', label?: string): Tensor<'f16'>;
  tensor<D extends DType>(data: TypedArrayFor<D> | number[], shape?: readonly number[], dtype?: D, label?: string): Tensor<D>;
  tensor<D extends DType>(data: TypedArrayFor<D> | number[], shape?: readonly number[], dtype?: D, label?: string): Tensor<D> {
    const dt = (dtype ?? dtypeOf(data)) as D;
    const arr = Array.isArray(data) ? toTyped(data, dt) : data;
    if (dtypeOf(arr) !== dt) throw new TypeError(`data is ${arr.constructor.name} but dtype is ${dt}`);
    const sh = shape ?? [arr.length];
    checkShape(sh);
    if (numel(sh) !== arr.length) throw new RangeError(`data has ${arr.length} elements but shape ${fmtShape(sh)} needs ${numel(sh)}`);
    return this.#alloc(sh, dt, label, arr);
  }

  /** A one-element f32 tensor holding `value`, kept by the Gpu (not counted live; never release it). */
  constant(value: number): Tensor<'f32'> {
    let t = this.#constants.get(value);
    if (!t) {
      this.#checkUsable();
      const buffer = this.device.createBuffer({ label: `constant ${value}`, size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, mappedAtCreation: true });
      new Float32Array(buffer.getMappedRange(), 0, 1)[0] = value;
      buffer.unmap();
      t = new Tensor(buffer, [1], 'f32', `constant ${value}`, () => {
        throw new Error(`constant ${value} belongs to the Gpu and cannot be released`);
      });
      this.#constants.set(value, t);
    }
    return t;
  }

  #alloc<D extends DType>(shape: readonly number[], dtype: D, label: string | undefined, data: TypedArray | undefined, zero = false): Tensor<D> {
    this.#checkUsable();
    checkShape(shape);
    if (!(dtype in BYTES_PER_ELEMENT)) throw new TypeError(`unknown dtype '${dtype}' (use f32, f16, u32 or i32)`);
    if (dtype === 'f16' && !this.features.has('shader-f16')) throw new RangeError(`an f16 tensor needs the adapter feature shader-f16, which ${this.summary.description || 'this adapter'} lacks`);
    const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
    // A tensor is one buffer; ops bind parts of one over the binding limit as views (ops/chunks.ts).
    const max = this.limits.maxBufferSize;
    if (bytes > max) throw new RangeError(`tensor ${label ?? ''}${fmtShape(shape)} needs ${bytes} bytes, over this adapter's maxBufferSize (${max} bytes)`);
    const name = label ?? `t${this.#nextId++}`;
    const { buffer, fresh } = this.#pool.acquire(bytes, name);
    // A free buffer is unused by the open batch, so a queue write (ordered before it) is safe.
    if (data && data.byteLength > 0) this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    const t = new Tensor<D>(buffer, shape, dtype, name, (tensor, buf) => {
      this.#live.delete(tensor);
      this.#liveBytes -= tensor.bytes;
      // The open batch may still use it: the pool waits for its submit (flush retires).
      this.#pool.release(buf);
      if (!this.#encoder) this.#retireOutsideBatch();
    });
    // New buffers are zero; reused ones are cleared in the batch, before any later use.
    if (zero && !fresh) this.clear(t);
    this.#live.add(t);
    this.#liveBytes += bytes;
    return t;
  }

  // A release outside a batch: free at once when every submit has finished (after a sync or a
  // read), else retire with the others once the current synchronous code is done; if that code
  // opened a batch meanwhile, the batch's flush retires them (the batch may use later releases).
  #retireOutsideBatch(): void {
    if (this.#finished === this.#submitted) return this.#pool.retire(this.device.queue, true);
    if (this.#retireScheduled) return;
    this.#retireScheduled = true;
    queueMicrotask(() => {
      this.#retireScheduled = false;
      if (!this.#destroyed && !this.#encoder) this.#pool.retire(this.device.queue, false);
    });
  }

  /** Overwrites a tensor's contents, ordered after the work already encoded in this batch. */
  write(t: Tensor, data: TypedArray): void {
    if (data.length !== t.size) throw new RangeError(`write of ${data.length} elements into ${t} of ${t.size}`);
    if (dtypeOf(data) !== t.dtype) throw new TypeError(`write of ${data.constructor.name} into ${t}`);
    const staging = this.device.createBuffer({ size: Math.max(16, copySize(t.bytes)), usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    staging.unmap();
    this.#endPass();
    this.#enc().copyBufferToBuffer(staging, 0, t.buffer, t.byteOffset, copySize(t.bytes));
    this.#afterSubmit.push(staging);
  }

  /** Sets a tensor to zero on the GPU, in order with the batch (no upload). */
  clear(t: Tensor): void {
    this.#endPass();
    if (t.bytes > 0) this.#enc().clearBuffer(t.buffer, t.byteOffset, copySize(t.bytes));
  }

  /** Copies src into dst (same size), in order with the batch. */
  copy(src: Tensor, dst: Tensor): void {
    if (src.bytes !== dst.bytes) throw new RangeError(`copy ${src} → ${dst}: sizes differ`);
    this.#endPass();
    if (src.dtype !== dst.dtype) throw new TypeError(`copy ${src} → ${dst}: dtypes differ (convert with ops/convert.ts)`);
    if (src.bytes > 0) this.#enc().copyBufferToBuffer(src.buffer, src.byteOffset, dst.buffer, dst.byteOffset, copySize(src.bytes));
  }

  // ---- kernels ----------------------------------------------------------------------------------

  #pipeline(spec: KernelSpec) {
    const key = kernelKey(spec);
    let p = this.#pipelines.get(key);
    if (!p) {
      const source = shaderSource(spec.shader, this.shaders, spec.types);
      let module = this.#modules.get(source.code);
      if (!module) {
        module = this.device.createShaderModule({ label: spec.shader, code: source.code });
        this.#modules.set(source.code, module);
      }
      const pipeline = this.device.createComputePipeline({
        label: key,
        layout: 'auto',
        compute: { module, entryPoint: spec.entry ?? 'main', constants: spec.constants as Record<string, number> },
      });
      p = { pipeline, layout: pipeline.getBindGroupLayout(0) };
      this.#pipelines.set(key, p);
    }
    return p;
  }

  #checkTensors(spec: KernelSpec, passed: number): void {
    const key = kernelKey(spec);
    let tensors = this.#contracts.get(key);
    if (tensors === undefined) {
      tensors = checkContract(spec, shaderSource(spec.shader, this.shaders, spec.types).code).tensors;
      this.#contracts.set(key, tensors);
    }
    if (passed !== tensors) throw new ContractError(`${key}: the shader binds ${tensors} tensors (bindings 1..${tensors}), the wrapper passed ${passed}`);
  }

  /** Compiles a shader file and reports WGSL errors as `file:line:col message`. */
  async compile(file: string): Promise<void> {
    const src = shaderSource(file, this.shaders);
    const module = this.device.createShaderModule({ label: file, code: src.code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) throw new GpuError(errors.map((m) => `${src.origin(m.lineNum)}:${m.linePos} ${m.message}`).join('\n'));
  }

  /** Encodes one dispatch into the open batch. Nothing runs until flush() or a read. */
  dispatch(spec: KernelSpec, args: DispatchArgs): void {
    this.#checkUsable();
    const [x, y = 1, z = 1] = args.workgroups;
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0) throw new RangeError(`${kernelKey(spec)}: bad workgroup count ${n}`);
      if (n > maxDim) throw new RangeError(`${kernelKey(spec)}: ${n} workgroups in one dimension is over maxComputeWorkgroupsPerDimension (${maxDim})`);
    }
    if (x * y * z === 0) return;
    this.#checkTensors(spec, args.tensors.length);
    this.#enc(); // opens the batch's error scopes before any object is created
    const { pipeline, layout } = this.#pipeline(spec);
    const entries: GPUBindGroupEntry[] = [];
    const pb = paramBytes(spec);
    if (pb > 0) {
      const slot = this.#uniformSlot(pb);
      packParams(spec, args.params, slot.view, slot.offset);
      entries.push({ binding: 0, resource: { buffer: slot.buffer, offset: slot.offset, size: pb } });
    }
    args.tensors.forEach((t, i) => entries.push({ binding: i + 1, resource: this.#binding(spec, t, i + 1) }));
    const bindGroup = this.device.createBindGroup({ layout, entries });
    const label = args.label ?? kernelKey(spec);
    let pass: GPUComputePassEncoder;
    if (this.#profiling && this.#profileLabels.length < PROFILE_CAPACITY) {
      this.#endPass();
      const i = this.#profileLabels.push(label) - 1;
      pass = this.#enc().beginComputePass({ timestampWrites: { querySet: this.#querySet!, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
      this.#pass = pass;
    } else pass = this.#openPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.#profiling) this.#endPass();
    this.#dispatches++;
  }

  // Pooled buffers can be larger than the tensor: bind its own extent (at least 16 bytes, so empty
  // tensors bind, within the buffer). A tensor over the binding limit is an op's job to split.
  #binding(spec: KernelSpec, t: Tensor, binding: number): GPUBufferBinding {
    const size = Math.min(Math.max(16, copySize(t.bytes)), t.buffer.size - t.byteOffset);
    if (size > this.bindingLimit) {
      throw new RangeError(`${kernelKey(spec)}: binding ${binding}, ${t}, is ${t.bytes} bytes, over the storage-binding limit of ${this.bindingLimit} bytes; this op does not split it`);
    }
    const align = this.limits.minStorageBufferOffsetAlignment;
    if (t.byteOffset % align !== 0) throw new RangeError(`${kernelKey(spec)}: binding ${binding}, ${t}, starts at byte ${t.byteOffset}, not a multiple of minStorageBufferOffsetAlignment (${align})`);
    return { buffer: t.buffer, offset: t.byteOffset, size };
  }

  /** Workgroup counts covering `n` invocations of `perGroup` each, folded into y past the per-dimension limit. */
  grid(n: number, perGroup: number): [number, number] {
    const groups = Math.ceil(n / perGroup);
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
    if (groups <= maxDim) return [groups, 1];
    const x = maxDim;
    return [x, Math.ceil(groups / x)];
  }

  #uniformSlot(bytes: number) {
    const align = this.limits.minUniformBufferOffsetAlignment;
    if (this.#chunkUsed + bytes > UNIFORM_CHUNK) {
      this.#chunkIndex++;
      this.#chunkUsed = 0;
    }
    if (this.#chunkIndex === this.#chunks.length) {
      this.#chunks.push({
        buffer: this.device.createBuffer({ label: 'uniforms', size: UNIFORM_CHUNK, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }),
        staging: new DataView(new ArrayBuffer(UNIFORM_CHUNK)),
      });
    }
    const chunk = this.#chunks[this.#chunkIndex]!;
    const offset = this.#chunkUsed;
    this.#chunkUsed = Math.ceil((offset + bytes) / align) * align;
    return { buffer: chunk.buffer, view: chunk.staging, offset };
  }

  #enc(): GPUCommandEncoder {
    if (!this.#encoder) {
      this.device.pushErrorScope('out-of-memory');
      this.device.pushErrorScope('validation');
      this.#encoder = this.device.createCommandEncoder();
    }
    return this.#encoder;
  }

  #openPass(): GPUComputePassEncoder {
    if (!this.#pass) this.#pass = this.#enc().beginComputePass();
    return this.#pass;
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = null;
  }

  // ---- submission and readback ------------------------------------------------------------------

  /** Submits the open batch (if any) as one command buffer. Does not wait. */
  flush(): void {
    if (!this.#encoder) return;
    this.#endPass();
    // Uniforms are written now, ordered before this submit and after every earlier one.
    for (let i = 0; i <= this.#chunkIndex && i < this.#chunks.length; i++) {
      const c = this.#chunks[i]!;
      const used = i < this.#chunkIndex ? UNIFORM_CHUNK : this.#chunkUsed;
      if (used > 0) this.device.queue.writeBuffer(c.buffer, 0, c.staging.buffer, 0, used);
    }
    const afterProfile = this.#profiling && this.#profileLabels.length > 0 ? this.#resolveProfile() : null;
    this.device.queue.submit([this.#encoder.finish()]);
    this.#submitted++;
    afterProfile?.();
    this.#encoder = null;
    this.#chunkIndex = 0;
    this.#chunkUsed = 0;
    this.#dispatches = 0;
    for (const b of this.#afterSubmit) b.destroy();
    this.#afterSubmit = [];
    this.#pool.retire(this.device.queue, false);
    this.#errorChecks.push(this.device.popErrorScope(), this.device.popErrorScope());
  }

  /** Submits and waits until the GPU is idle; throws the first validation/OOM error since the last sync. */
  async sync(): Promise<void> {
    this.flush();
    const upTo = this.#submitted;
    await this.#await(this.device.queue.onSubmittedWorkDone());
    this.#finished = Math.max(this.#finished, upTo);
    await this.#checkErrors();
  }

  async #checkErrors(): Promise<void> {
    const checks = this.#errorChecks;
    this.#errorChecks = [];
    const errors = [...this.#uncaptured, ...(await Promise.all(checks)).filter((e): e is GPUError => e !== null)];
    this.#uncaptured = [];
    if (errors.length) throw new GpuError(errors.map((e) => e.message.trim()).join('\n'));
  }

  /** Reads tensors back; the only place (with sync) that waits for the GPU. */
  async read<D extends DType>(t: Tensor<D>): Promise<TypedArrayFor<D>> {
    const [out] = await this.readMany([t]);
    return out as TypedArrayFor<D>;
  }

  async readMany(ts: readonly Tensor[]): Promise<TypedArray[]> {
    this.#checkUsable();
    this.#endPass();
    const stagings = ts.map((t) => {
      const s = this.device.createBuffer({ size: Math.max(16, copySize(t.bytes)), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      if (t.bytes > 0) this.#enc().copyBufferToBuffer(t.buffer, t.byteOffset, s, 0, copySize(t.bytes));
      return s;
    });
    this.#enc();
    this.flush();
    const upTo = this.#submitted;
    try {
      await this.#await(Promise.all(stagings.map((s) => s.mapAsync(GPUMapMode.READ))));
      // A mapped result means its submit, and every earlier one, has finished.
      this.#finished = Math.max(this.#finished, upTo);
      await this.#checkErrors();
      return ts.map((t, i) => {
        const bytes = stagings[i]!.getMappedRange().slice(0, t.bytes);
        return t.dtype === 'f32' ? new Float32Array(bytes) : t.dtype === 'f16' ? new Uint16Array(bytes) : t.dtype === 'u32' ? new Uint32Array(bytes) : new Int32Array(bytes);
      });
    } finally {
      for (const s of stagings) s.destroy();
    }
  }

  /** Reads a one-element tensor as a number. */
  async scalar(t: Tensor): Promise<number> {
    if (t.size !== 1) throw new RangeError(`scalar() of ${t}: expected one element`);
    return (await this.read(t))[0]!;
  }

  // A lost device rejects or never settles some promises; race them against the loss.
  async #await<T>(p: Promise<T>): Promise<T> {
    const lost = this.device.lost.then((info) => {
      throw new GpuError(`GPU device lost (${info.reason}): ${info.message}`);
    });
    return Promise.race([p, lost]);
  }

  #checkUsable(): void {
    if (this.#destroyed) throw new GpuError('this Gpu was destroyed');
    if (this.#lost) throw new GpuError(`GPU device lost (${this.#lost.reason}): ${this.#lost.message}`);
  }

  // ---- profiling --------------------------------------------------------------------------------

  /** Records a GPU timestamp pair per dispatch while on (needs 'timestamp-query'). */
  setProfiling(on: boolean): boolean {
    if (on && !this.features.has('timestamp-query')) return false;
    this.flush();
    this.#profiling = on;
    if (on && !this.#querySet) this.#querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 * PROFILE_CAPACITY });
    return true;
  }

  /** Encodes the timestamp resolve; returns what must run after the submit (mapping its result). */
  #resolveProfile(): () => void {
    const labels = this.#profileLabels;
    this.#profileLabels = [];
    const bytes = labels.length * 16;
    const resolve = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const read = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.#encoder!.resolveQuerySet(this.#querySet!, 0, 2 * labels.length, resolve, 0);
    this.#encoder!.copyBufferToBuffer(resolve, 0, read, 0, bytes);
    this.#afterSubmit.push(resolve);
    // Mapping before the submit that writes the buffer is invalid: map once it is submitted.
    return () =>
      this.#profileResults.push(
        read.mapAsync(GPUMapMode.READ).then(() => {
          const ts = new BigUint64Array(read.getMappedRange().slice(0));
          read.destroy();
          return labels.map((label, i) => ({ label, ms: Number(ts[2 * i + 1]! - ts[2 * i]!) / 1e6 }));
        }),
      );
  }

  /** Timings of the profiled dispatches submitted since the last call. */
  async profile(): Promise<ProfileEntry[]> {
    this.flush();
    const all = await Promise.all(this.#profileResults);
    this.#profileResults = [];
    return all.flat();
  }

  // ---- teardown ---------------------------------------------------------------------------------

  /**
   * Releases the device and drops the Dawn instance. Dawn keeps Node's event loop alive while the
   * instance is referenced, so a program that skips this never exits on its own.
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of [...this.#live]) t.release();
    this.#pool.destroy();
    for (const t of this.#constants.values()) t.buffer.destroy();
    for (const c of this.#chunks) c.buffer.destroy();
    this.#querySet?.destroy();
    this.#encoder = null;
    this.#pass = null;
    this.device.destroy();
    if (this.#instance) releaseInstance(this.#instance);
    this.#instance = null;
  }
}

function dtypeOf(a: TypedArray | number[]): DType {
  if (a instanceof Float32Array || Array.isArray(a)) return 'f32';
  if (a instanceof Uint32Array) return 'u32';
  if (a instanceof Int32Array) return 'i32';
  if (a instanceof Uint16Array) return 'f16';
  throw new TypeError(`unsupported array type ${(a as object).constructor.name} (use Float32Array, Uint16Array of f16 bits, Uint32Array or Int32Array)`);
}

function toTyped(data: number[], dtype: DType): TypedArray {
  if (dtype === 'f16') throw new TypeError('an f16 tensor takes a Uint16Array of half-precision bits, not numbers');
  return dtype === 'f32' ? Float32Array.from(data) : dtype === 'u32' ? Uint32Array.from(data) : Int32Array.from(data);
}
