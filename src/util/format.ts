// Format versions of the files seal-webgpu writes (checkpoints, generators and policies, edits, run
// directories, the autotune cache). A file written before versions existed has none: version 0,
// read as it is (its layout is version 1's). A version this code does not know — newer, or not a
// version at all — is a FormatVersionError naming both versions, never a silent misreading.
import { UserError } from './errors.ts';

export class FormatVersionError extends UserError {
  override name = 'FormatVersionError';
  readonly found: string;
  readonly supported: number;

  constructor(file: string, what: string, found: string, supported: number) {
    const newer = /^\d+$/.test(found) && Number(found) > supported;
    super(
      `${file}: ${what} format version ${found}${newer ? ' is newer than' : ' is not one of'} the versions this seal-webgpu reads (0 to ${supported})` +
        (newer ? '; it was written by a newer seal-webgpu: upgrade to read it' : ''),
    );
    this.found = found;
    this.supported = supported;
  }
}

/** The version `declared` in a file's metadata (a number or its text; absent: 0), at most `current`. */
export function readVersion(file: string, what: string, declared: unknown, current: number): number {
  if (declared === undefined || declared === null) return 0;
  const v = typeof declared === 'string' && /^\d+$/.test(declared) ? Number(declared) : declared;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= current) return v;
  throw new FormatVersionError(file, what, typeof declared === 'string' ? declared : JSON.stringify(declared), current);
}
