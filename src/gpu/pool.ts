// Reuse of tensor buffers (after onnxruntime's WebGPU gpu-data-manager): free lists keyed by a size
// class. A released buffer first waits until the GPU has finished the work submitted before its
// release, then becomes free; until then a later batch could still be reading it.

/** Buffer size for `bytes`: 16-byte steps up to 256, then quarter powers of two (≤ 25 % slack). */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 256) return b;
  const step = 2 ** (Math.ceil(Math.log2(b)) - 3); // a quarter of the power of two below
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  /** Buffers created since the Gpu was made (tensors only). */
  created: number;
  /** Bytes held by the pool: free, or waiting for the GPU. */
  pooledBytes: number;
  pooledBuffers: number;
  /** Bytes of every tensor buffer that exists now (live, pooled or waiting), and their peak. */
  heldBytes: number;
  peakHeldBytes: number;
}

export class BufferPool {
  readonly #device: GPUDevice;
  readonly #enabled: boolean;
  #free = new Map<number, GPUBuffer[]>();
  #released: GPUBuffer[] = [];
  #stats: PoolStats = { created: 0, pooledBytes: 0, pooledBuffers: 0, heldBytes: 0, peakHeldBytes: 0 };
  #closed = false;

  /** With `enabled` false every release destroys its buffer (once submitted) and every acquire creates one. */
  constructor(device: GPUDevice, enabled: boolean) {
    this.#device = device;
    this.#enabled = enabled;
  }

  get stats(): PoolStats {
    return { ...this.#stats };
  }

  /** A buffer of at least `bytes`; `fresh` buffers are zero, reused ones hold old data. */
  acquire(bytes: number, label: string): { buffer: GPUBuffer; fresh: boolean } {
    const size = this.#enabled ? Math.min(sizeClass(bytes), Math.max(this.#device.limits.maxBufferSize, bytes)) : Math.max(16, Math.ceil(bytes / 4) * 4);
    const reused = this.#free.get(size)?.pop();
    if (reused) {
      this.#count(reused, -1);
      reused.label = label;
      return { buffer: reused, fresh: false };
    }
    this.#stats.created++;
    this.#stats.heldBytes += size;
    this.#stats.peakHeldBytes = Math.max(this.#stats.peakHeldBytes, this.#stats.heldBytes);
    return { buffer: this.#device.createBuffer({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }), fresh: true };
  }

  /** Takes back a buffer that work encoded so far may still use; see retire(). */
  release(buffer: GPUBuffer): void {
    this.#released.push(buffer);
    if (this.#enabled) this.#count(buffer, +1);
  }

  /**
   * Call after a submit (or with no batch open): the buffers released so far become free once the
   * queue has finished everything submitted until now, at once when `idle` says it has.
   */
  retire(queue: GPUQueue, idle: boolean): void {
    const group = this.#released;
    if (group.length === 0) return;
    this.#released = [];
    if (!this.#enabled) {
      for (const b of group) this.#destroy(b);
      return;
    }
    if (idle) {
      this.#makeFree(group);
      return;
    }
    queue.onSubmittedWorkDone().then(() => {
      this.#makeFree(group);
    });
  }

  #makeFree(group: readonly GPUBuffer[]): void {
    for (const b of group) {
      if (this.#closed) this.#destroy(b);
      else {
        let list = this.#free.get(b.size);
        if (!list) this.#free.set(b.size, (list = []));
        list.push(b);
      }
    }
  }

  /** Destroys the free buffers (those still waiting for the GPU stay). Returns the bytes freed. */
  trim(): number {
    let freed = 0;
    for (const list of this.#free.values()) {
      for (const b of list) {
        freed += b.size;
        this.#count(b, -1);
        this.#destroy(b);
      }
    }
    this.#free.clear();
    return freed;
  }

  destroy(): void {
    this.#closed = true;
    this.trim();
    for (const b of this.#released) this.#destroy(b);
    this.#released = [];
  }

  /** Starts a new peak from what is held now (e.g. at the start of a command's measured part). */
  resetPeak(): void {
    this.#stats.peakHeldBytes = this.#stats.heldBytes;
  }

  #destroy(b: GPUBuffer): void {
    this.#stats.heldBytes -= b.size;
    b.destroy();
  }

  #count(b: GPUBuffer, sign: 1 | -1): void {
    this.#stats.pooledBytes += sign * b.size;
    this.#stats.pooledBuffers += sign;
  }
}
