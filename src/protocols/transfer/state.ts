/**
 * The receiver's crash-safe state, under `<data>/transfers/<peer>-<id>/`
 * (pairing-transfer.md B.3, "Crash-safe resume"):
 *
 * - `offer.json`: the manifest, the peer, the destination (written once, atomically, at Accept);
 * - `tables.bin`: the chunk tables fetched so far (each verified against its root);
 * - `state.bin`: per file a done flag and a bitfield of verified chunks, with a CRC-32.
 *   Replaced atomically (temp, fsync, rename, fsync dir) every 64 MiB or 2 s and on pause or
 *   exit, always *after* fdatasync of the part files, so a bit set on disk means the chunk
 *   is on disk. A missing or corrupt `state.bin` is rebuilt by re-hashing the parts.
 *
 * @module
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { writeFileAtomic } from '../../service/atomic-file.ts';
import { makeDir } from '../../util/make-dir.ts';
import { HASH_BYTES, validateManifest, type Manifest } from './wire.ts';

const STATE_MAGIC = 0x53445853; // "SDXS"

export interface StoredOffer {
  readonly version: 1;
  /** The sender's EndpointId (hex). */
  readonly peer: string;
  readonly peerName: string | null;
  readonly manifest: Manifest;
  /** The destination directory. */
  readonly dest: string;
  readonly createdAt: number;
}

export interface FileState {
  done: boolean;
  /** One bit per chunk (LSB first). */
  bits: Uint8Array;
}

export function transferDir(dataDir: string, peerHex: string, id: string): string {
  return join(dataDir, 'transfers', `${peerHex.slice(0, 16)}-${id}`);
}

export async function saveOffer(dir: string, offer: StoredOffer): Promise<void> {
  await makeDir(dir, 0o700);
  await writeFileAtomic(join(dir, 'offer.json'), JSON.stringify(offer));
}

/** The stored offer, or undefined if there is none or it does not parse. */
export async function loadOffer(dir: string): Promise<StoredOffer | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, 'offer.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const o = JSON.parse(text) as StoredOffer;
    if (o.version !== 1 || typeof o.peer !== 'string' || typeof o.dest !== 'string') return undefined;
    return { ...o, manifest: validateManifest(o.manifest) };
  } catch {
    return undefined;
  }
}

export function bitsFor(chunks: number): Uint8Array {
  return new Uint8Array(Math.ceil(chunks / 8));
}

export function hasBit(bits: Uint8Array, i: number): boolean {
  return (bits[i >>> 3]! & (1 << (i & 7))) !== 0;
}

export function setBit(bits: Uint8Array, i: number): void {
  bits[i >>> 3]! |= 1 << (i & 7);
}

export function clearBits(bits: Uint8Array): void {
  bits.fill(0);
}

export function countBits(bits: Uint8Array, chunks: number): number {
  let n = 0;
  for (let i = 0; i < chunks; i++) if (hasBit(bits, i)) n++;
  return n;
}

function withCrc(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 4);
  out.set(body);
  new DataView(out.buffer).setUint32(body.length, crc32(body));
  return out;
}

function checkCrc(buf: Uint8Array): Uint8Array | undefined {
  if (buf.length < 4) return undefined;
  const body = buf.subarray(0, buf.length - 4);
  return new DataView(buf.buffer, buf.byteOffset).getUint32(buf.length - 4) === crc32(body) ? body : undefined;
}

/** state.bin: magic, count, then per file `u8 done ‖ u32 n ‖ n bytes of bits`, then CRC-32. */
export function encodeState(files: readonly FileState[]): Uint8Array {
  let size = 8;
  for (const f of files) size += 5 + f.bits.length;
  const body = new Uint8Array(size);
  const dv = new DataView(body.buffer);
  dv.setUint32(0, STATE_MAGIC);
  dv.setUint32(4, files.length);
  let o = 8;
  for (const f of files) {
    body[o] = f.done ? 1 : 0;
    dv.setUint32(o + 1, f.bits.length);
    body.set(f.bits, o + 5);
    o += 5 + f.bits.length;
  }
  return withCrc(body);
}

/** The stored state if it is intact and matches `chunks` per file; undefined otherwise. */
export function decodeState(buf: Uint8Array, chunks: readonly number[]): FileState[] | undefined {
  const body = checkCrc(buf);
  if (body === undefined || body.length < 8) return undefined;
  const dv = new DataView(body.buffer, body.byteOffset, body.length);
  if (dv.getUint32(0) !== STATE_MAGIC || dv.getUint32(4) !== chunks.length) return undefined;
  const out: FileState[] = [];
  let o = 8;
  for (const n of chunks) {
    if (o + 5 > body.length) return undefined;
    const len = dv.getUint32(o + 1);
    if (len !== Math.ceil(n / 8) || o + 5 + len > body.length) return undefined;
    out.push({ done: body[o] === 1, bits: body.slice(o + 5, o + 5 + len) });
    o += 5 + len;
  }
  return o === body.length ? out : undefined;
}

export async function saveState(dir: string, files: readonly FileState[]): Promise<void> {
  await writeFileAtomic(join(dir, 'state.bin'), encodeState(files));
}

export async function loadState(dir: string, chunks: readonly number[]): Promise<FileState[] | undefined> {
  try {
    return decodeState(new Uint8Array(await readFile(join(dir, 'state.bin'))), chunks);
  } catch {
    return undefined;
  }
}

/** tables.bin: count, then per file `u32 bytes ‖ table` (0 bytes: not fetched), then CRC-32. */
export async function saveTables(dir: string, tables: readonly (Uint8Array | undefined)[]): Promise<void> {
  let size = 4;
  for (const t of tables) size += 4 + (t?.length ?? 0);
  const body = new Uint8Array(size);
  const dv = new DataView(body.buffer);
  dv.setUint32(0, tables.length);
  let o = 4;
  for (const t of tables) {
    dv.setUint32(o, t?.length ?? 0);
    if (t) body.set(t, o + 4);
    o += 4 + (t?.length ?? 0);
  }
  await writeFileAtomic(join(dir, 'tables.bin'), withCrc(body));
}

/** The stored tables (each still to be checked against its root by the caller). */
export async function loadTables(dir: string, count: number): Promise<(Uint8Array | undefined)[]> {
  const out: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(count).fill(undefined);
  let buf: Uint8Array;
  try {
    buf = new Uint8Array(await readFile(join(dir, 'tables.bin')));
  } catch {
    return out;
  }
  const body = checkCrc(buf);
  if (body === undefined || body.length < 4) return out;
  const dv = new DataView(body.buffer, body.byteOffset, body.length);
  if (dv.getUint32(0) !== count) return out;
  let o = 4;
  for (let i = 0; i < count; i++) {
    if (o + 4 > body.length) return out;
    const len = dv.getUint32(o);
    if (len % HASH_BYTES !== 0 || o + 4 + len > body.length) return out;
    if (len > 0) out[i] = body.slice(o + 4, o + 4 + len);
    o += 4 + len;
  }
  return out;
}

export async function removeTransferDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
