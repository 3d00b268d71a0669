// A GPU buffer with a shape and a dtype. Created and released through a Gpu, which counts live ones.

export type DType = 'f32' | 'u32' | 'i32';
export type TypedArrayFor<D extends DType> = D extends 'f32' ? Float32Array : D extends 'u32' ? Uint32Array : Int32Array;

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, u32: 4, i32: 4 };

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
    const owner = this.#parent ?? this;
    const v = new Tensor<D>(this.buffer, shape, this.dtype, `${owner.label}${fmtShape(shape)}`, () => {});
    v.#parent = owner;
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
