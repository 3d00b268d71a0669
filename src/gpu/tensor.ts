// A GPU buffer with a shape and a dtype. Created and released through a Gpu, which counts live ones.

/** f16 is storage only (weights; IEEE half bits on the host as Uint16Array): kernels compute in f32. */
export type DType = 'f32' | 'f16' | 'u32' | 'i32';
export type TypedArrayFor<D extends DType> = D extends 'f32' ? Float32Array : D extends 'f16' ? Uint16Array : D extends 'u32' ? Uint32Array : Int32Array;

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, f16: 2, u32: 4, i32: 4 };

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: readonly number[], what = 'shape'): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TypeError(`${what} must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
}

export class Tensor<D extends DType = DType> {
  #buffer: GPUBuffer | null;
  readonly shape: readonly number[];
  readonly dtype: D;
  readonly size: number;
  readonly label: string;
  /** Called once on release: the owner destroys the buffer once no pending work uses it. */
  readonly #onRelease: (t: Tensor, buffer: GPUBuffer) => void;
  /** For a view: the tensor that owns the buffer. */
  #parent: Tensor | null = null;
  /** Where a view starts in the buffer, in bytes (0 for an owner). */
  #byteOffset = 0;

  constructor(buffer: GPUBuffer, shape: readonly number[], dtype: D, label: string, onRelease: (t: Tensor, buffer: GPUBuffer) => void) {
    this.#buffer = buffer;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = numel(shape);
    this.label = label;
    this.#onRelease = onRelease;
  }

  get bytes(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }

  /** Where the tensor's data starts in its buffer: non-zero only for a view made by `view`. */
  get byteOffset(): number {
    return this.#byteOffset;
  }

  get released(): boolean {
    return this.#buffer === null || this.#parent?.released === true;
  }

  /** The underlying buffer; throws if the tensor was released (a use-after-free would otherwise be silent). */
  get buffer(): GPUBuffer {
    if (!this.#buffer) throw new Error(`tensor '${this.label}' ${fmtShape(this.shape)} was released and cannot be used`);
    return this.#buffer;
  }

  /**
   * The same data under another shape (row-major, same element count), sharing the buffer. A view
   * owns nothing: releasing it is free, and it becomes unusable when its owner is released.
   */
  reshape(shape: readonly number[]): Tensor<D> {
    checkShape(shape);
    if (numel(shape) !== this.size) throw new RangeError(`cannot reshape ${this} to ${fmtShape(shape)}: ${numel(shape)} elements, not ${this.size}`);
    return this.view(0, shape);
  }

  /**
   * A view of `shape` starting `offset` elements into this tensor, sharing the buffer: how an op
   * binds part of a tensor too large for one storage binding. Dispatch checks that its byte offset
   * meets the adapter's minStorageBufferOffsetAlignment.
   */
  view(offset: number, shape: readonly number[]): Tensor<D> {
    checkShape(shape);
    if (!Number.isInteger(offset) || offset < 0 || offset + numel(shape) > this.size) {
      throw new RangeError(`view of ${fmtShape(shape)} at element ${offset} is outside ${this}`);
    }
    const owner = this.#parent ?? this;
    const byteOffset = this.#byteOffset + offset * BYTES_PER_ELEMENT[this.dtype];
    const at = byteOffset === 0 ? '' : `@${byteOffset / BYTES_PER_ELEMENT[this.dtype]}`;
    const v = new Tensor<D>(this.buffer, shape, this.dtype, `${owner.label}${at}${fmtShape(shape)}`, () => {});
    v.#parent = owner;
    v.#byteOffset = byteOffset;
    return v;
  }

  release(): void {
    const b = this.#buffer;
    if (!b) return;
    this.#buffer = null;
    this.#onRelease(this, b);
  }

  toString(): string {
    return `Tensor(${this.label}, ${this.dtype}${fmtShape(this.shape)})`;
  }
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join('×')}]`;
}

/** An f32 tensor: what most ops take and give. */
export type F32 = Tensor<'f32'>;
/** A weight: f32, or f16 where the model is stored in half precision. */
export type Weight = Tensor<'f32' | 'f16'>;

/** Bytes a copy or clear of `bytes` moves: WebGPU copies whole 4-byte words. */
export const copySize = (bytes: number) => Math.ceil(bytes / 4) * 4;
