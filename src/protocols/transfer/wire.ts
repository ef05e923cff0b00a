/**
 * Wire format of `sdnet/xfer/1` (pairing-transfer.md B.3). Every message is one
 * length-prefixed frame (src/protocols/framing.ts) whose first byte says what it is:
 *
 * | type | body | direction |
 * |---|---|---|
 * | `0x01` control | UTF-8 JSON `{"t": …}` (below) | either |
 * | `0x02` chunk | `u32 file ‖ u64 chunk ‖ u64 counter ‖ u8 last ‖ ciphertext ‖ tag` | sender → receiver |
 * | `0x03` table | the file's chunk SHA-256s, 32 bytes each | sender → receiver |
 *
 * Control messages: on the control stream the sender opens, `offer` → `accept {salt}` |
 * `reject`, then `progress`, `pause`, `resume`, `cancel`, `done`, `fail`; on streams the
 * receiver opens, `table {id, file}` → a table frame, and `get {id, file, first, count}` →
 * `count` chunk frames (or `fail`).
 *
 * Chunk encryption: AES-256-GCM under K = HKDF-SHA256(link key, salt = the Accept's fresh
 * salt, info = "sdnet-xfer/1" ‖ transfer id ‖ sender EndpointId ‖ receiver EndpointId); nonce =
 * 0x01 (direction sender → receiver) ‖ 3 zero bytes ‖ u64 counter, the counter per attempt;
 * AAD = transfer id ‖ u32 file ‖ u64 chunk ‖ u32 length ‖ u8 last.
 *
 * Root of a file: SHA-256("sdnet-xfer/1" ‖ u64 size ‖ u32 chunk size ‖ chunk SHA-256s).
 *
 * @module
 */
import { defaultCryptoProvider, type Aead, type CryptoProvider } from '../../transport/crypto/index.ts';
import { TransferError } from './errors.ts';
import {
  XFER_MAX_CHUNK_SIZE,
  XFER_MAX_CHUNKS_PER_FILE,
  XFER_MAX_CHUNKS_PER_GET,
  XFER_MAX_ENTRIES,
  XFER_MAX_REASON_LENGTH,
  XFER_MIN_CHUNK_SIZE,
} from './limits.ts';
import { validateManifestPaths } from './paths.ts';

export const FRAME_CONTROL = 0x01;
export const FRAME_CHUNK = 0x02;
export const FRAME_TABLE = 0x03;
/** type ‖ u32 file ‖ u64 chunk ‖ u64 counter ‖ u8 last */
export const CHUNK_HEADER_BYTES = 1 + 4 + 8 + 8 + 1;
export const TAG_BYTES = 16;
export const HASH_BYTES = 32;
export const TRANSFER_ID_BYTES = 16;
export const SALT_BYTES = 32;

const DOMAIN = new TextEncoder().encode('sdnet-xfer/1');
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export interface ManifestEntry {
  /** Relative, NFC, '/'-joined. */
  readonly path: string;
  readonly kind: 'file' | 'dir';
  /** Bytes (0 for a directory). */
  readonly size: number;
  /** Permission bits (& 0o777). */
  readonly mode: number;
  /** Modification time, µs since the epoch. */
  readonly mtimeUs: number;
  /** Files: the root over the chunk table, 64 hex. */
  readonly root?: string;
}

export interface Manifest {
  /** 32 hex (16 bytes). */
  readonly id: string;
  readonly chunkSize: number;
  readonly entries: readonly ManifestEntry[];
}

export type ControlMessage =
  | { t: 'offer'; v: 1; manifest: Manifest }
  | { t: 'accept'; salt: string }
  | { t: 'reject'; code: string; reason: string }
  | { t: 'progress'; bytes: number; files: number }
  | { t: 'pause'; code?: string; reason?: string }
  | { t: 'resume' }
  | { t: 'cancel'; reason: string }
  | { t: 'done'; files: number; bytes: number }
  | { t: 'fail'; code: string; reason: string }
  | { t: 'table'; id: string; file: number }
  | { t: 'get'; id: string; file: number; first: number; count: number };

function malformed(why: string): TransferError {
  return new TransferError('ERR_TRANSFER_MALFORMED', `Malformed transfer message: ${why}`);
}

/** Chunks of a file of `size` bytes. */
export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

export function isHex(s: unknown, length: number): s is string {
  return typeof s === 'string' && s.length === length && /^[0-9a-f]*$/.test(s);
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function encodeControl(m: ControlMessage): Uint8Array {
  const json = encoder.encode(JSON.stringify(m));
  const out = new Uint8Array(1 + json.length);
  out[0] = FRAME_CONTROL;
  out.set(json, 1);
  return out;
}

const int = (v: unknown, what: string, min: number, max: number): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw malformed(`${what} is not an integer in [${min}, ${max}]`);
  return v;
};
const text = (v: unknown, what: string): string => {
  if (typeof v !== 'string') throw malformed(`${what} is not a string`);
  return v.slice(0, XFER_MAX_REASON_LENGTH);
};
const id = (v: unknown): string => {
  if (!isHex(v, TRANSFER_ID_BYTES * 2)) throw malformed('id is not 32 lowercase hex');
  return v;
};

/**
 * Check a manifest a peer sent: sizes, counts, chunk size, every path rule.
 *
 * @throws {TransferError} `ERR_TRANSFER_MANIFEST` (limits, fields) or `ERR_TRANSFER_PATH`
 */
export function validateManifest(raw: unknown): Manifest {
  const bad = (why: string): TransferError => new TransferError('ERR_TRANSFER_MANIFEST', `Manifest refused: ${why}`);
  if (typeof raw !== 'object' || raw === null) throw bad('not an object');
  const o = raw as Record<string, unknown>;
  if (!isHex(o.id, TRANSFER_ID_BYTES * 2)) throw bad('id is not 32 lowercase hex');
  const cs = o.chunkSize;
  if (typeof cs !== 'number' || !Number.isSafeInteger(cs) || cs < XFER_MIN_CHUNK_SIZE || cs > XFER_MAX_CHUNK_SIZE || (cs & (cs - 1)) !== 0) throw bad(`chunk size is not a power of two in [${XFER_MIN_CHUNK_SIZE}, ${XFER_MAX_CHUNK_SIZE}]`);
  if (!Array.isArray(o.entries)) throw bad('entries is not a list');
  if (o.entries.length > XFER_MAX_ENTRIES) throw bad(`${o.entries.length} entries, more than ${XFER_MAX_ENTRIES}`);
  const maxSize = XFER_MAX_CHUNKS_PER_FILE * cs;
  const entries: ManifestEntry[] = [];
  for (const e of o.entries as unknown[]) {
    if (typeof e !== 'object' || e === null) throw bad('an entry is not an object');
    const r = e as Record<string, unknown>;
    if (typeof r.path !== 'string') throw bad('an entry has no path');
    if (r.kind !== 'file' && r.kind !== 'dir') throw bad(`entry ${JSON.stringify(r.path.slice(0, 80))} has kind ${JSON.stringify(r.kind)} (only files and directories travel)`);
    const size = r.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > maxSize || (r.kind === 'dir' && size !== 0)) throw bad(`entry ${JSON.stringify(r.path.slice(0, 80))} has a bad size (at most ${maxSize} bytes)`);
    const mode = r.mode;
    if (typeof mode !== 'number' || !Number.isSafeInteger(mode) || mode < 0 || mode > 0o777) throw bad('a mode is not in [0, 0o777]');
    const mtimeUs = r.mtimeUs;
    if (typeof mtimeUs !== 'number' || !Number.isSafeInteger(mtimeUs) || mtimeUs < 0) throw bad('an mtime is not a non-negative integer');
    if (r.kind === 'file' && !isHex(r.root, HASH_BYTES * 2)) throw bad('a file has no root (64 hex)');
    entries.push({ path: r.path, kind: r.kind, size, mode, mtimeUs, ...(r.kind === 'file' ? { root: r.root as string } : {}) });
  }
  validateManifestPaths(entries);
  return { id: o.id, chunkSize: cs, entries };
}

/**
 * Decode a control frame (type byte included).
 *
 * @throws {TransferError} `ERR_TRANSFER_MALFORMED`, or a manifest error for an offer
 */
export function decodeControl(frame: Uint8Array): ControlMessage {
  if (frame.length < 1 || frame[0] !== FRAME_CONTROL) throw malformed(`expected a control frame, got type ${frame[0] ?? 'none'}`);
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(frame.subarray(1)));
  } catch {
    throw malformed('not UTF-8 JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('not an object');
  const o = v as Record<string, unknown>;
  switch (o.t) {
    case 'offer':
      if (o.v !== 1) throw malformed(`offer version ${String(o.v)}`);
      return { t: 'offer', v: 1, manifest: validateManifest(o.manifest) };
    case 'accept':
      if (!isHex(o.salt, SALT_BYTES * 2)) throw malformed('salt is not 64 hex');
      return { t: 'accept', salt: o.salt };
    case 'reject':
      return { t: 'reject', code: text(o.code, 'code').slice(0, 64), reason: text(o.reason, 'reason') };
    case 'progress':
      return { t: 'progress', bytes: int(o.bytes, 'bytes', 0, Number.MAX_SAFE_INTEGER), files: int(o.files, 'files', 0, XFER_MAX_ENTRIES) };
    case 'pause':
      return { t: 'pause', ...(o.code !== undefined ? { code: text(o.code, 'code').slice(0, 64) } : {}), ...(o.reason !== undefined ? { reason: text(o.reason, 'reason') } : {}) };
    case 'resume':
      return { t: 'resume' };
    case 'cancel':
      return { t: 'cancel', reason: text(o.reason ?? '', 'reason') };
    case 'done':
      return { t: 'done', files: int(o.files, 'files', 0, XFER_MAX_ENTRIES), bytes: int(o.bytes, 'bytes', 0, Number.MAX_SAFE_INTEGER) };
    case 'fail':
      return { t: 'fail', code: text(o.code, 'code').slice(0, 64), reason: text(o.reason, 'reason') };
    case 'table':
      return { t: 'table', id: id(o.id), file: int(o.file, 'file', 0, XFER_MAX_ENTRIES - 1) };
    case 'get':
      return { t: 'get', id: id(o.id), file: int(o.file, 'file', 0, XFER_MAX_ENTRIES - 1), first: int(o.first, 'first', 0, XFER_MAX_CHUNKS_PER_FILE - 1), count: int(o.count, 'count', 1, XFER_MAX_CHUNKS_PER_GET) };
    default:
      throw malformed(`unknown message ${JSON.stringify(String(o.t).slice(0, 32))}`);
  }
}

// ------------------------------------------------------------------ roots, keys, chunks

/** The root of a file over its table. */
export function fileRoot(size: number, chunkSize: number, table: Uint8Array, provider: CryptoProvider = defaultCryptoProvider): Uint8Array {
  const head = new Uint8Array(DOMAIN.length + 12);
  head.set(DOMAIN);
  const dv = new DataView(head.buffer);
  dv.setBigUint64(DOMAIN.length, BigInt(size));
  dv.setUint32(DOMAIN.length + 8, chunkSize);
  return provider.hasher('sha256').update(head).update(table).digest();
}

/** The chunk key of one attempt. */
export function deriveChunkKey(linkKey: Uint8Array, salt: Uint8Array, transferId: Uint8Array, sender: Uint8Array, receiver: Uint8Array, provider: CryptoProvider = defaultCryptoProvider): Uint8Array {
  const prk = provider.hkdfExtract('sha256', salt, linkKey);
  const info = new Uint8Array(DOMAIN.length + transferId.length + sender.length + receiver.length);
  info.set(DOMAIN);
  info.set(transferId, DOMAIN.length);
  info.set(sender, DOMAIN.length + transferId.length);
  info.set(receiver, DOMAIN.length + transferId.length + sender.length);
  return provider.hkdfExpand('sha256', prk, info, 32);
}

function nonceOf(counter: bigint): Uint8Array {
  const n = new Uint8Array(12);
  n[0] = 0x01; // sender → receiver
  new DataView(n.buffer).setBigUint64(4, counter);
  return n;
}

function aadOf(transferId: Uint8Array, file: number, chunk: number, length: number, last: boolean): Uint8Array {
  const a = new Uint8Array(TRANSFER_ID_BYTES + 17);
  a.set(transferId);
  const dv = new DataView(a.buffer);
  dv.setUint32(TRANSFER_ID_BYTES, file);
  dv.setBigUint64(TRANSFER_ID_BYTES + 4, BigInt(chunk));
  dv.setUint32(TRANSFER_ID_BYTES + 12, length);
  a[TRANSFER_ID_BYTES + 16] = last ? 1 : 0;
  return a;
}

/** The AEAD of one attempt. */
export function chunkAead(key: Uint8Array, provider: CryptoProvider = defaultCryptoProvider): Aead {
  return provider.aead('aes-256-gcm', key);
}

/**
 * A chunk frame body: the plaintext is read into `buf` at {@link CHUNK_HEADER_BYTES} by the
 * caller and sealed in place (`buf` must have room for the tag).
 */
export function sealChunkInPlace(aead: Aead, transferId: Uint8Array, buf: Uint8Array, length: number, file: number, chunk: number, counter: bigint, last: boolean): Uint8Array {
  buf[0] = FRAME_CHUNK;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  dv.setUint32(1, file);
  dv.setBigUint64(5, BigInt(chunk));
  dv.setBigUint64(13, counter);
  buf[21] = last ? 1 : 0;
  const plain = buf.subarray(CHUNK_HEADER_BYTES, CHUNK_HEADER_BYTES + length);
  const n = aead.sealInto(nonceOf(counter), aadOf(transferId, file, chunk, length, last), plain, buf, CHUNK_HEADER_BYTES);
  return buf.subarray(0, CHUNK_HEADER_BYTES + n);
}

export interface OpenedChunk {
  readonly file: number;
  readonly chunk: number;
  readonly counter: bigint;
  readonly last: boolean;
  /** Null: the tag did not verify. */
  readonly plain: Uint8Array | null;
}

/** Parse and open a chunk frame (type byte included). @throws {TransferError} `ERR_TRANSFER_MALFORMED` */
export function openChunk(aead: Aead, transferId: Uint8Array, frame: Uint8Array): OpenedChunk {
  if (frame.length < CHUNK_HEADER_BYTES + TAG_BYTES || frame[0] !== FRAME_CHUNK) throw malformed('expected a chunk frame');
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.length);
  const file = dv.getUint32(1);
  const chunk = Number(dv.getBigUint64(5));
  const counter = dv.getBigUint64(13);
  const lastByte = frame[21]!;
  if (lastByte > 1) throw malformed('last flag is not 0 or 1');
  const last = lastByte === 1;
  const sealed = frame.subarray(CHUNK_HEADER_BYTES);
  const length = sealed.length - TAG_BYTES;
  const plain = aead.open(nonceOf(counter), aadOf(transferId, file, chunk, length, last), sealed);
  return { file, chunk, counter, last, plain };
}
