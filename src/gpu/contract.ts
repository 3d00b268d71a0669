// The contract between a TS wrapper and its shader, read from the WGSL text: the uniform struct an
// entry point uses must list the wrapper's `params` in order with their types, and the tensors it
// binds must sit at bindings 1..n. Checked once per pipeline, so a field swapped on one side is a
// named error instead of silently wrong numbers.
import { kernelKey, type KernelSpec } from './kernel.ts';

export class ContractError extends Error {
  override name = 'ContractError';
}

/** What an entry point expects: its uniform fields ('name:type') and how many tensors it binds. */
export interface EntryContract {
  params: readonly string[];
  tensors: number;
}

interface ModuleVar {
  binding: number;
  name: string;
  type: string;
  uniform: boolean;
}

const STRUCT = /\bstruct\s+(\w+)\s*\{([^}]*)\}/g;
const VAR = /@group\(0\)\s*@binding\((\d+)\)\s*var(<[^>]*>)?\s+(\w+)\s*:\s*([^;]+);/g;
const FN = /\bfn\s+(\w+)\s*\(/g;

/** Function bodies by name (brace-matched from the first `{` after the signature). */
function functions(code: string): Map<string, string> {
  const fns = new Map<string, string>();
  for (const m of code.matchAll(FN)) {
    const open = code.indexOf('{', m.index);
    let depth = 0;
    let end = open;
    for (; end < code.length; end++) {
      if (code[end] === '{') depth++;
      else if (code[end] === '}' && --depth === 0) break;
    }
    fns.set(m[1]!, code.slice(m.index, end + 1));
  }
  return fns;
}

/** `name` used as an identifier (not as a field after a dot). */
const mentions = (text: string, name: string) => new RegExp(`(?<![.\\w])${name}\\b`).test(text);

/** Reads an entry point's contract from WGSL source (comments are ignored). */
export function entryContract(source: string, entry: string, where = entry): EntryContract {
  const code = source.replace(/\/\/.*$/gm, '');
  const fns = functions(code);
  if (!fns.has(entry)) throw new ContractError(`${where}: no entry point '${entry}' in the shader`);
  // The entry and every function it calls, transitively.
  const reached = new Set([entry]);
  for (const name of reached) for (const callee of fns.keys()) if (!reached.has(callee) && mentions(fns.get(name)!, callee)) reached.add(callee);
  const body = [...reached].map((n) => fns.get(n)!).join('\n');

  const vars: ModuleVar[] = [...code.matchAll(VAR)]
    .map((m) => ({ binding: Number(m[1]), name: m[3]!, type: m[4]!.trim(), uniform: m[2] === '<uniform>' }))
    .filter((v) => mentions(body, v.name));
  const seen = new Map<number, string>();
  for (const v of vars) {
    const other = seen.get(v.binding);
    if (other !== undefined) throw new ContractError(`${where}: '${other}' and '${v.name}' both use binding ${v.binding}`);
    seen.set(v.binding, v.name);
  }

  let params: string[] = [];
  const uniform = vars.find((v) => v.uniform);
  if (uniform) {
    if (uniform.binding !== 0) throw new ContractError(`${where}: the uniform '${uniform.name}' must be at binding 0, not ${uniform.binding}`);
    const struct = [...code.matchAll(STRUCT)].find((m) => m[1] === uniform.type);
    if (!struct) throw new ContractError(`${where}: struct ${uniform.type} not found`);
    params = struct[2]!
      .split(',')
      .map((f) => f.replace(/\s+/g, ''))
      .filter((f) => f !== '');
  }

  const tensors = vars.filter((v) => !v.uniform).map((v) => v.binding).sort((a, b) => a - b);
  tensors.forEach((b, i) => {
    if (b !== i + 1) throw new ContractError(`${where}: tensors must sit at bindings 1..n, but binding ${i + 1} is unused (uses ${tensors.join(', ')})`);
  });
  return { params, tensors: tensors.length };
}

/** Checks a wrapper's declared uniform fields against the shader; returns the entry's contract. */
export function checkContract(spec: KernelSpec, source: string): EntryContract {
  const key = kernelKey(spec);
  const contract = entryContract(source, spec.entry ?? 'main', key);
  const declared = spec.params ?? [];
  const n = Math.max(declared.length, contract.params.length);
  for (let i = 0; i < n; i++) {
    if (declared[i] !== contract.params[i]) {
      throw new ContractError(
        `${key}: uniform field ${i} is '${contract.params[i] ?? '(none)'}' in the shader but '${declared[i] ?? '(none)'}' in the wrapper ` +
          `(shader: ${contract.params.join(', ') || 'no uniforms'}; wrapper: ${declared.join(', ') || 'no uniforms'})`,
      );
    }
  }
  return contract;
}
