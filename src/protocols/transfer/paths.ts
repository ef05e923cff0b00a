/**
 * The path rules of a manifest (pairing-transfer.md B.3, "Hostile-peer limits"): a path a
 * peer names is relative, NFC, '/'-joined, at most 4,096 bytes, 64 components of at most 255
 * bytes, and no component is empty, `.`, `..`, holds `\`, `:`, NUL or a control character,
 * ends in a dot or a space, or is a Windows-reserved name. Two entries may not differ by case
 * folding only, and no entry may sit under a file. Checked before anything is written.
 *
 * @module
 */
import { TransferError } from './errors.ts';
import { XFER_MAX_COMPONENT_BYTES, XFER_MAX_DEPTH, XFER_MAX_PATH_BYTES } from './limits.ts';

const encoder = new TextEncoder();
/** CON, PRN, AUX, NUL, COM0-9, LPT0-9, also with an extension (`con.txt`), any case. */
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Our own partial files: a peer may not name one. */
export const PART_SUFFIX = '.sdpart';

function bad(path: string, why: string): TransferError {
  const shown = JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}…` : path);
  return new TransferError('ERR_TRANSFER_PATH', `Unsafe path ${shown}: ${why}`);
}

/**
 * Check one relative path; returns its components.
 *
 * @throws {TransferError} `ERR_TRANSFER_PATH` naming the rule it breaks
 */
export function validateRelativePath(path: unknown): string[] {
  if (typeof path !== 'string') throw new TransferError('ERR_TRANSFER_PATH', 'A path is not a string');
  if (path.length === 0) throw bad(path, 'empty');
  if (encoder.encode(path).length > XFER_MAX_PATH_BYTES) throw bad(path, `longer than ${XFER_MAX_PATH_BYTES} bytes`);
  if (path.startsWith('/')) throw bad(path, 'absolute');
  if (path.normalize('NFC') !== path) throw bad(path, 'not in Unicode NFC');
  if (path.includes('\u0000')) throw bad(path, 'holds NUL');
  if (path.includes('\\')) throw bad(path, 'holds a backslash');
  const parts = path.split('/');
  if (parts.length > XFER_MAX_DEPTH) throw bad(path, `deeper than ${XFER_MAX_DEPTH} components`);
  for (const c of parts) {
    if (c === '') throw bad(path, 'an empty component');
    if (c === '.' || c === '..') throw bad(path, `a "${c}" component`);
    if (encoder.encode(c).length > XFER_MAX_COMPONENT_BYTES) throw bad(path, `a component longer than ${XFER_MAX_COMPONENT_BYTES} bytes`);
    if (CONTROL.test(c)) throw bad(path, 'a control character');
    if (c.includes(':')) throw bad(path, 'a colon');
    if (c.endsWith('.') || c.endsWith(' ')) throw bad(path, 'a component ending in a dot or a space');
    if (WINDOWS_RESERVED.test(c)) throw bad(path, `a Windows-reserved name "${c}"`);
    if (c.endsWith(PART_SUFFIX)) throw bad(path, `a name ending in ${PART_SUFFIX}`);
  }
  return parts;
}

/** The key two paths collide on when a filesystem folds case (and compatibility forms). */
export function foldKey(path: string): string {
  return path.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC');
}

/**
 * Check a manifest's paths together: each valid, no two equal after case folding, no entry
 * under a file.
 *
 * @throws {TransferError} `ERR_TRANSFER_PATH`
 */
export function validateManifestPaths(entries: readonly { readonly path: string; readonly kind: 'file' | 'dir' }[]): void {
  const seen = new Map<string, string>();
  const files = new Set<string>();
  for (const e of entries) {
    validateRelativePath(e.path);
    const key = foldKey(e.path);
    const other = seen.get(key);
    if (other !== undefined) throw bad(e.path, other === e.path ? 'listed twice' : `collides with "${other}" when case is folded`);
    seen.set(key, e.path);
    if (e.kind === 'file') files.add(key);
  }
  for (const e of entries) {
    const parts = foldKey(e.path).split('/');
    for (let i = 1; i < parts.length; i++) {
      if (files.has(parts.slice(0, i).join('/'))) throw bad(e.path, 'lies under a file of the same transfer');
    }
  }
}
