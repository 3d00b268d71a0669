// WGSL sources (shaders/*.wgsl, composed once per reader) and kernel descriptions.

/**
 * One compute entry point of a shader file, with its override constants and the layout of its
 * uniform parameters. Binding 0 of group 0 is the uniform block when `params` is given; tensors
 * follow at bindings 1, 2, ... in the order the wrapper passes them. Both are checked against the
 * WGSL when the kernel is first dispatched (contract.ts).
 */
export interface KernelSpec {
  shader: string;
  entry?: string;
  /** Uniform fields in declaration order, each a 4-byte scalar: 'M:u32', 'alpha:f32', 'offset:i32'. */
  params?: readonly string[];
  /** WGSL `override` constants (tile sizes and the like). */
  constants?: Readonly<Record<string, number>>;
  /** Element types of the shader's storage-type parameters (`// #storage-type name`); f32 unless given. */
  types?: Readonly<Record<string, StorageType>>;
}

/** How a storage-type parameter is stored; kernels convert loads to f32 and compute in f32. */
export type StorageType = 'f32' | 'f16';

export type ParamValues = Readonly<Record<string, number>>;

/** A shader as compiled: common.wgsl, the file and its includes, with each line's origin. */
export interface ShaderSource {
  code: string;
  /** Where line `line` (1-based) of `code` comes from, as `shaders/<file>:<line>`. */
  origin(line: number): string;
}

/** Prepended to every shader: helpers more than one shader uses. */
const COMMON = 'common.wgsl';
// A line `// #include "x.wgsl"` is replaced by that file (a comment, so the file stays valid WGSL).
const INCLUDE = /^\/\/ #include "([\w.-]+)"\s*$/;
// Directives must precede every declaration, so the loader moves them to the top.
const DIRECTIVE = /^\s*(enable|requires|diagnostic)\b/;
// A line `// #storage-type w_t` declares a type parameter: the loader writes `alias w_t = f32;`
// (or f16, from KernelSpec.types), so one source serves weights stored either way.
const STORAGE_TYPE = /^\/\/ #storage-type (\w+)\s*$/;

interface Line {
  text: string;
  file: string;
  line: number;
}

/**
 * The text of `shaders/<file>`: read from disk in Node (io/shaders.ts), bundled at build time in a
 * page (web/build.ts). Throws when there is no such file.
 */
export type ShaderReader = (file: string) => string;

const composed = new WeakMap<ShaderReader, Map<string, ShaderSource>>();

function expand(read: ShaderReader, file: string, stack: readonly string[]): Line[] {
  if (stack.includes(file)) throw new Error(`shader include cycle: ${[...stack, file].join(' → ')}`);
  return read(file)
    .split('\n')
    .flatMap((text, i) => {
      const inc = INCLUDE.exec(text);
      return inc ? expand(read, inc[1]!, [...stack, file]) : [{ text, file, line: i + 1 }];
    });
}

export function shaderSource(file: string, read: ShaderReader, types: Readonly<Record<string, StorageType>> = {}): ShaderSource {
  let sources = composed.get(read);
  if (sources === undefined) composed.set(read, (sources = new Map()));
  const key = `${file}${typesKey(types)}`;
  let src = sources.get(key);
  if (src === undefined) {
    const declared = new Set<string>();
    const body = [...expand(read, COMMON, []), ...expand(read, file, [])].map((l) => {
      const name = STORAGE_TYPE.exec(l.text)?.[1];
      if (name === undefined) return l;
      declared.add(name);
      return { ...l, text: `alias ${name} = ${types[name] ?? 'f32'};` };
    });
    const unknown = Object.keys(types).filter((n) => !declared.has(n));
    if (unknown.length) throw new Error(`shader '${file}' has no storage-type parameter ${unknown.join(', ')} (it declares: ${[...declared].join(', ') || 'none'})`);
    if (Object.values(types).includes('f16')) body.unshift({ text: 'enable f16;', file, line: 0 });
    const lines = [...body.filter((l) => DIRECTIVE.test(l.text)), ...body.filter((l) => !DIRECTIVE.test(l.text))];
    src = {
      code: lines.map((l) => l.text).join('\n'),
      origin: (n) => {
        const l = lines[n - 1];
        return l ? `shaders/${l.file}:${l.line}` : `shaders/${file}:?`;
      },
    };
    sources.set(key, src);
  }
  return src;
}

const typesKey = (types: Readonly<Record<string, StorageType>> = {}) =>
  Object.entries(types)
    .filter(([, t]) => t !== 'f32')
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([n, t]) => `:${n}=${t}`)
    .join('');

export function kernelKey(spec: KernelSpec): string {
  const consts = spec.constants ? Object.entries(spec.constants).sort(([a], [b]) => (a < b ? -1 : 1)) : [];
  return `${spec.shader}:${spec.entry ?? 'main'}:${consts.map(([k, v]) => `${k}=${v}`).join(',')}${typesKey(spec.types)}`;
}

/** Packs uniform values in the order the spec declares; every declared field must be given. */
export function packParams(spec: KernelSpec, values: ParamValues | undefined, out: DataView, offset: number): number {
  const fields = spec.params ?? [];
  fields.forEach((field, i) => {
    const [name, type] = field.split(':') as [string, string];
    const v = values?.[name];
    if (v === undefined || !Number.isFinite(v)) {
      throw new TypeError(`${kernelKey(spec)}: parameter '${name}' must be a finite number, got ${v}`);
    }
    const at = offset + 4 * i;
    if (type === 'f32') out.setFloat32(at, v, true);
    else if (type === 'u32') {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${kernelKey(spec)}: '${name}' must be a u32, got ${v}`);
      out.setUint32(at, v, true);
    } else if (type === 'i32') {
      if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new RangeError(`${kernelKey(spec)}: '${name}' must be an i32, got ${v}`);
      out.setInt32(at, v, true);
    } else throw new TypeError(`${kernelKey(spec)}: parameter '${field}' has unknown type (use u32, i32 or f32)`);
  });
  return paramBytes(spec);
}

/** Uniform block size, rounded up to 16 bytes as uniform bindings want. */
export function paramBytes(spec: KernelSpec): number {
  return Math.ceil(((spec.params?.length ?? 0) * 4) / 16) * 16;
}
