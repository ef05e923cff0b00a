/**
 * The path rules and manifest limits of `sdnet/xfer/1` (issue 14 item 4), one attacker's
 * question each: what a hostile sender may name, and what it may not.
 */
import { describe, expect, it } from 'vitest';
import { TransferError } from '../../src/protocols/transfer/errors.ts';
import { XFER_MAX_ENTRIES } from '../../src/protocols/transfer/limits.ts';
import { validateManifestPaths, validateRelativePath } from '../../src/protocols/transfer/paths.ts';
import { FRAME_CONTROL, chunkAead, decodeControl, deriveChunkKey, encodeControl, fileRoot, openChunk, sealChunkInPlace, validateManifest, CHUNK_HEADER_BYTES, TAG_BYTES } from '../../src/protocols/transfer/wire.ts';
import { nobleCryptoProvider, nodeCryptoProvider } from '../../src/transport/crypto/index.ts';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TransferError);
    return (err as TransferError).code;
  }
  return 'accepted';
};

describe('path rules', () => {
  const refused: [string, string][] = [
    ['absolute', '/etc/passwd'],
    ['dot-dot', '../outside'],
    ['dot-dot inside', 'a/../../b'],
    ['dot', 'a/./b'],
    ['empty component', 'a//b'],
    ['trailing slash', 'a/'],
    ['empty', ''],
    ['backslash', 'a\\..\\b'],
    ['NUL', 'a\u0000b'],
    ['control character', 'a\u001bb'],
    ['C1 control character', 'a\u0085b'],
    ['DEL', 'a\u007f'],
    ['colon (drive, stream)', 'C:/x'],
    ['trailing dot', 'name.'],
    ['trailing space', 'name '],
    ['reserved CON', 'CON'],
    ['reserved nul.txt', 'dir/nul.txt'],
    ['reserved com1', 'com1'],
    ['reserved LPT9.log', 'LPT9.log'],
    ['not NFC', 'cafe\u0301'],
    ['path too long', 'a/'.repeat(2100) + 'b'],
    ['component too long', 'x'.repeat(256)],
    ['component of 128 two-byte chars', 'é'.repeat(128)],
    ['too deep', Array.from({ length: 65 }, () => 'd').join('/')],
    ['our part suffix', 'x.sdpart'],
  ];
  for (const [why, path] of refused) {
    it(`refuses ${why}`, () => {
      expect(code(() => validateRelativePath(path))).toBe('ERR_TRANSFER_PATH');
    });
  }
  it('accepts ordinary and non-ASCII names at the limits', () => {
    for (const p of ['a', 'dir/sub/file.txt', 'café/日本語.txt', 'x'.repeat(255), 'é'.repeat(127), Array.from({ length: 64 }, () => 'd').join('/'), '.hidden', 'a b', 'console', 'CONx']) {
      expect(code(() => validateRelativePath(p)), p).toBe('accepted');
    }
  });
  it('refuses case-folding collisions, duplicates and entries under a file', () => {
    const f = (path: string) => ({ path, kind: 'file' as const });
    const d = (path: string) => ({ path, kind: 'dir' as const });
    expect(code(() => validateManifestPaths([f('Readme.md'), f('README.md')]))).toBe('ERR_TRANSFER_PATH');
    expect(code(() => validateManifestPaths([d('Dir'), f('dir/x')]))).toBe('accepted');
    expect(code(() => validateManifestPaths([d('Dir'), d('DIR')]))).toBe('ERR_TRANSFER_PATH');
    expect(code(() => validateManifestPaths([f('straße'), f('STRASSE')]))).toBe('ERR_TRANSFER_PATH');
    expect(code(() => validateManifestPaths([f('ﬁle'), f('file')]))).toBe('ERR_TRANSFER_PATH');
    expect(code(() => validateManifestPaths([f('a'), f('a')]))).toBe('ERR_TRANSFER_PATH');
    expect(code(() => validateManifestPaths([f('a'), f('a/b')]))).toBe('ERR_TRANSFER_PATH');
    expect(code(() => validateManifestPaths([f('A'), d('a/b')]))).toBe('ERR_TRANSFER_PATH');
  });
});

describe('manifest limits', () => {
  const root = '0'.repeat(64);
  const id = 'ab'.repeat(16);
  const entry = (i: number) => ({ path: `f${i}`, kind: 'file', size: 1, mode: 0o644, mtimeUs: 1, root });
  it('refuses more than 100,000 entries, a bad chunk size, oversized files, other kinds, bad fields', () => {
    expect(code(() => validateManifest({ id, chunkSize: 1 << 20, entries: Array.from({ length: XFER_MAX_ENTRIES + 1 }, (_, i) => entry(i)) }))).toBe('ERR_TRANSFER_MANIFEST');
    expect(code(() => validateManifest({ id, chunkSize: 1 << 20, entries: Array.from({ length: 1000 }, (_, i) => entry(i)) }))).toBe('accepted');
    for (const chunkSize of [0, 1000, 3 << 19, 32 << 20, 32 << 10, -1, 1.5, '1048576']) expect(code(() => validateManifest({ id, chunkSize, entries: [] })), String(chunkSize)).toBe('ERR_TRANSFER_MANIFEST');
    expect(code(() => validateManifest({ id, chunkSize: 1 << 16, entries: [{ ...entry(0), size: (1 << 20) * (1 << 16) + 1 }] }))).toBe('ERR_TRANSFER_MANIFEST');
    expect(code(() => validateManifest({ id, chunkSize: 1 << 20, entries: [{ ...entry(0), kind: 'symlink' }] }))).toBe('ERR_TRANSFER_MANIFEST');
    expect(code(() => validateManifest({ id, chunkSize: 1 << 20, entries: [{ ...entry(0), mode: 0o4755 }] }))).toBe('ERR_TRANSFER_MANIFEST');
    expect(code(() => validateManifest({ id, chunkSize: 1 << 20, entries: [{ ...entry(0), root: undefined }] }))).toBe('ERR_TRANSFER_MANIFEST');
    expect(code(() => validateManifest({ id: 'AB'.repeat(16), chunkSize: 1 << 20, entries: [] }))).toBe('ERR_TRANSFER_MANIFEST');
    expect(code(() => validateManifest({ id, chunkSize: 1 << 20, entries: [{ ...entry(0), path: '../x' }] }))).toBe('ERR_TRANSFER_PATH');
  });
  it('control messages: round trip, unknown types and bad fields refused', () => {
    const m = { t: 'get', id, file: 3, first: 7, count: 4 } as const;
    expect(decodeControl(encodeControl(m))).toEqual(m);
    const raw = (o: unknown) => new Uint8Array([FRAME_CONTROL, ...new TextEncoder().encode(JSON.stringify(o))]);
    expect(code(() => decodeControl(raw({ t: 'nope' })))).toBe('ERR_TRANSFER_MALFORMED');
    expect(code(() => decodeControl(raw({ ...m, count: 17 })))).toBe('ERR_TRANSFER_MALFORMED');
    expect(code(() => decodeControl(raw({ ...m, first: -1 })))).toBe('ERR_TRANSFER_MALFORMED');
    expect(code(() => decodeControl(new Uint8Array([FRAME_CONTROL, 0xff, 0xfe])))).toBe('ERR_TRANSFER_MALFORMED');
    expect(code(() => decodeControl(new Uint8Array([0x02, 0x7b, 0x7d])))).toBe('ERR_TRANSFER_MALFORMED');
  });
});

describe('chunk sealing', () => {
  it('node and noble agree; position, counter and key are bound; a flipped bit fails to open', () => {
    const tid = new Uint8Array(16).fill(7);
    const key = deriveChunkKey(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), tid, new Uint8Array(32).fill(3), new Uint8Array(32).fill(4));
    expect(key).toEqual(deriveChunkKey(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), tid, new Uint8Array(32).fill(3), new Uint8Array(32).fill(4), nobleCryptoProvider));
    const otherKey = deriveChunkKey(new Uint8Array(32).fill(1), new Uint8Array(32).fill(9), tid, new Uint8Array(32).fill(3), new Uint8Array(32).fill(4));
    const data = new Uint8Array(1000).map((_, i) => i * 7);
    const seal = (provider = nodeCryptoProvider, k = key) => {
      const buf = new Uint8Array(CHUNK_HEADER_BYTES + data.length + TAG_BYTES);
      buf.set(data, CHUNK_HEADER_BYTES);
      return sealChunkInPlace(chunkAead(k, provider), tid, buf, data.length, 2, 5, 9n, true);
    };
    const frame = seal();
    expect(frame).toEqual(seal(nobleCryptoProvider));
    const opened = openChunk(chunkAead(key), tid, frame);
    expect(opened).toMatchObject({ file: 2, chunk: 5, counter: 9n, last: true });
    expect(opened.plain).toEqual(data);
    expect(openChunk(chunkAead(key, nobleCryptoProvider), tid, frame).plain).toEqual(data);
    const flip = (i: number) => {
      const f = frame.slice();
      f[i]! ^= 1;
      return openChunk(chunkAead(key), tid, f).plain;
    };
    expect(flip(4)).toBeNull(); // file
    expect(flip(12)).toBeNull(); // chunk
    expect(flip(20)).toBeNull(); // counter (the nonce)
    expect(flip(CHUNK_HEADER_BYTES + 10)).toBeNull(); // ciphertext
    expect(flip(frame.length - 1)).toBeNull(); // tag
    expect(openChunk(chunkAead(otherKey), tid, frame).plain).toBeNull();
    expect(openChunk(chunkAead(key), new Uint8Array(16), frame).plain).toBeNull();
    expect(fileRoot(5, 65536, new Uint8Array(32))).toEqual(fileRoot(5, 65536, new Uint8Array(32), nobleCryptoProvider));
    expect(fileRoot(5, 65536, new Uint8Array(32))).not.toEqual(fileRoot(6, 65536, new Uint8Array(32)));
  });
});
