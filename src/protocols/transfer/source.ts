/**
 * The sending side's view of the files: walk the paths given (lstat, never follow), build the
 * manifest, hash every file into its chunk table (node:crypto SHA-256, one reused buffer).
 * Symlinks, devices, FIFOs and sockets are skipped and counted.
 *
 * @module
 */
import { lstat, open, readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { defaultCryptoProvider, type CryptoProvider } from '../../transport/crypto/index.ts';
import { TransferError } from './errors.ts';
import { XFER_MAX_CHUNKS_PER_FILE, XFER_MAX_ENTRIES } from './limits.ts';
import { validateManifestPaths } from './paths.ts';
import { HASH_BYTES, chunkCount, fileRoot, toHex, type ManifestEntry } from './wire.ts';

export interface SourceFile {
  readonly entry: ManifestEntry;
  /** Where it is on this machine. */
  readonly absPath: string;
  /** Chunk SHA-256s, 32 bytes each. */
  readonly table: Uint8Array;
}

export interface Source {
  readonly entries: ManifestEntry[];
  /** Per entry index: the file (undefined for directories). */
  readonly files: (SourceFile | undefined)[];
  readonly bytes: number;
  readonly fileCount: number;
  /** Symlinks, devices, FIFOs and sockets left out. */
  readonly skipped: string[];
}

/** µs since the epoch, from a bigint stat. */
export function mtimeUsOf(mtimeNs: bigint): number {
  return Number(mtimeNs / 1000n);
}

/** Hash `path` into its chunk table (returns it and the size read). */
export async function hashFile(path: string, size: number, chunkSize: number, provider: CryptoProvider = defaultCryptoProvider, onBytes?: (n: number) => void): Promise<Uint8Array> {
  const n = chunkCount(size, chunkSize);
  const table = new Uint8Array(n * HASH_BYTES);
  if (n === 0) return table;
  const buf = new Uint8Array(chunkSize);
  const fh = await open(path, 'r');
  try {
    for (let i = 0; i < n; i++) {
      const want = Math.min(chunkSize, size - i * chunkSize);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, i * chunkSize + got);
        if (bytesRead === 0) throw new TransferError('ERR_TRANSFER_SOURCE_CHANGED', `${path} shrank while it was read`);
        got += bytesRead;
      }
      table.set(provider.hash('sha256', buf.subarray(0, want)), i * HASH_BYTES);
      onBytes?.(want);
    }
  } finally {
    await fh.close();
  }
  return table;
}

/**
 * Walk `paths` into a manifest; each path arrives under its own base name.
 *
 * @throws {TransferError} `ERR_TRANSFER_PATH` for a name the rules refuse, `ERR_TRANSFER_MANIFEST` over the limits
 */
export async function buildSource(paths: readonly string[], chunkSize: number, options: { provider?: CryptoProvider; onHashed?: (bytes: number) => void } = {}): Promise<Source> {
  const entries: ManifestEntry[] = [];
  const located: { abs: string; size: number }[] = [];
  const skipped: string[] = [];
  const add = (e: ManifestEntry, abs: string): void => {
    if (entries.length >= XFER_MAX_ENTRIES) throw new TransferError('ERR_TRANSFER_MANIFEST', `More than ${XFER_MAX_ENTRIES} files and directories`);
    entries.push(e);
    located.push({ abs, size: e.size });
  };
  const walk = async (abs: string, rel: string): Promise<void> => {
    const st = await lstat(abs, { bigint: true });
    const base = { path: rel, mode: Number(st.mode & 0o777n), mtimeUs: mtimeUsOf(st.mtimeNs) };
    if (st.isDirectory()) {
      add({ ...base, kind: 'dir', size: 0 }, abs);
      const names = (await readdir(abs)).sort();
      for (const name of names) await walk(join(abs, name), `${rel}/${name.normalize('NFC')}`);
    } else if (st.isFile()) {
      const size = Number(st.size);
      if (chunkCount(size, chunkSize) > XFER_MAX_CHUNKS_PER_FILE) throw new TransferError('ERR_TRANSFER_MANIFEST', `${abs} is larger than ${XFER_MAX_CHUNKS_PER_FILE} chunks of ${chunkSize} bytes`);
      add({ ...base, kind: 'file', size }, abs);
    } else {
      skipped.push(abs);
    }
  };
  for (const p of paths) {
    const abs = resolve(p);
    await walk(abs, basename(abs).normalize('NFC'));
  }
  validateManifestPaths(entries);
  const files: (SourceFile | undefined)[] = [];
  let bytes = 0;
  let fileCount = 0;
  const provider = options.provider ?? defaultCryptoProvider;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.kind !== 'file') {
      files.push(undefined);
      continue;
    }
    const abs = located[i]!.abs;
    const table = await hashFile(abs, e.size, chunkSize, provider, options.onHashed);
    const withRoot: ManifestEntry = { ...e, root: toHex(fileRoot(e.size, chunkSize, table, provider)) };
    entries[i] = withRoot;
    files.push({ entry: withRoot, absPath: abs, table });
    bytes += e.size;
    fileCount++;
  }
  return { entries, files, bytes, fileCount, skipped };
}
