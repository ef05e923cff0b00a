/**
 * Test trees for file transfer: build one (empty files, an empty directory, a large file,
 * many small files, non-ASCII names, odd modes and mtimes) and compare two of them (kinds,
 * sizes, SHA-256 of contents, permission bits, mtimes to the µs).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const MiB = 1024 * 1024;

/** A file of `size` bytes whose every MiB differs (random block, index stamped in). */
export async function writeBigFile(path: string, size: number, seedBlock: Buffer = randomBytes(MiB)): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const block = Buffer.from(seedBlock);
    for (let off = 0, i = 0; off < size; off += MiB, i++) {
      block.writeUInt32BE(i, 0);
      block.writeUInt32BE(i * 2654435761 >>> 0, 100);
      await fh.write(block, 0, Math.min(MiB, size - off), off);
    }
  } finally {
    await fh.close();
  }
}

export interface TreeOptions {
  bigBytes: number;
  smallFiles: number;
  seed: number;
}

/** Build the acceptance tree under `root/name`; returns its path. */
export async function buildTree(root: string, name: string, o: TreeOptions): Promise<string> {
  const top = join(root, name);
  let s = o.seed >>> 0;
  const rand = (): number => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s;
  };
  await mkdir(join(top, 'empty-dir'), { recursive: true });
  await mkdir(join(top, 'small', 'deeper'), { recursive: true });
  await mkdir(join(top, 'café', '日本語'), { recursive: true });
  await writeFile(join(top, 'empty-1'), '');
  await writeFile(join(top, 'small', 'deeper', 'empty-2'), '');
  await writeFile(join(top, 'café', '日本語', 'ファイル 🎉.txt'), 'こんにちは\n');
  await writeFile(join(top, 'Ünïcödé ñame.bin'), randomBytes(70_000));
  await writeBigFile(join(top, 'big.bin'), o.bigBytes);
  for (let i = 0; i < o.smallFiles; i++) {
    const dir = i % 3 === 0 ? join(top, 'small', 'deeper') : join(top, 'small');
    await writeFile(join(dir, `f-${i}.dat`), randomBytes(rand() % 9000));
  }
  await chmod(join(top, 'empty-1'), 0o600);
  await chmod(join(top, 'big.bin'), 0o640);
  await chmod(join(top, 'Ünïcödé ñame.bin'), 0o755);
  await chmod(join(top, 'empty-dir'), 0o750);
  // Odd mtimes with µs digits (and one before 2001).
  await utimes(join(top, 'empty-1'), 1_000_000_000.123456, 999_999_999.654321);
  await utimes(join(top, 'big.bin'), 1_700_000_000.5, 1_700_000_123.000007);
  await utimes(join(top, 'empty-dir'), 1_600_000_000, 1_600_000_001.999999);
  return top;
}

export interface TreeRow {
  kind: 'file' | 'dir';
  size: number;
  sha256: string | null;
  mode: number;
  mtimeUs: bigint;
}

/** Every entry under `top` (relative path → row), never following links. */
export async function describeTree(top: string): Promise<Map<string, TreeRow>> {
  const out = new Map<string, TreeRow>();
  const walk = async (abs: string, rel: string): Promise<void> => {
    const st = await lstat(abs, { bigint: true });
    const row: TreeRow = { kind: st.isDirectory() ? 'dir' : 'file', size: Number(st.size), sha256: null, mode: Number(st.mode & 0o777n), mtimeUs: st.mtimeNs / 1000n };
    if (st.isDirectory()) {
      row.size = 0;
      for (const n of (await readdir(abs)).sort()) await walk(join(abs, n), rel === '' ? n : `${rel}/${n}`);
    } else if (st.isFile()) {
      const h = createHash('sha256');
      const fh = await open(abs, 'r');
      try {
        const buf = Buffer.alloc(4 * MiB);
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) break;
          h.update(buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
      row.sha256 = h.digest('hex');
    } else throw new Error(`unexpected ${abs}`);
    if (rel !== '') out.set(rel, row);
  };
  await walk(top, '');
  return out;
}

export async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}
