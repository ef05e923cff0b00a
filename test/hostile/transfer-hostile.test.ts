/**
 * A hostile sender against the receiving side of `sdnet/xfer/1` (issue 14 acceptance): a
 * test peer holding a paired key speaks the protocol by hand. Every path rule, a manifest
 * over the limits, a chunk with a bad tag, a chunk that opens but mismatches its table, a
 * table that mismatches its root — each is refused with a clear error code, nothing is
 * written outside the destination, and no partial file is presented as complete (the target
 * name never appears; only the hidden `.sdpart` may).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, EndpointAddr, SecretKey, StreamResetError, type Connection } from '../../src/index.ts';
import { FrameReader, StreamCode, encodeFrame } from '../../src/protocols/index.ts';
import { XFER_ALPN, XFER_MAX_ENTRIES, transferModule } from '../../src/protocols/transfer/index.ts';
import { CHUNK_HEADER_BYTES, FRAME_TABLE, TAG_BYTES, chunkAead, decodeControl, deriveChunkKey, encodeControl, fileRoot, fromHex, sealChunkInPlace, toHex, type ControlMessage } from '../../src/protocols/transfer/wire.ts';
import { Core } from '../../src/service/index.ts';
import type { TransferProgress } from '../../src/service/modules.ts';
import { FIXTURE_LINK_KEY, pairDataDirs } from '../helpers/pair-fixture.ts';
import { freeUdpPort } from '../helpers/sdnet-proc.ts';
import { until } from '../helpers/relay-test-utils.ts';

const CS = 65536;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
let root: string;
let downloads: string;
let service: Core;
let hostile: Endpoint;
let conn: Connection;
const events: TransferProgress[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sdnet-xfer-hostile-'));
  const portA = await freeUdpPort();
  await pairDataDirs(join(root, 'service'), join(root, 'hostile'), { nameA: 'service', nameB: 'hostile', addrA: [`127.0.0.1:${portA}`] });
  downloads = join(root, 'dest');
  service = await Core.init({ dataDir: join(root, 'service'), bind: [`127.0.0.1:${portA}`], downloadsDir: downloads, modules: { transfer: transferModule() } });
  service.networking.on('transfer-progress', (p) => events.push(p));
  const key = SecretKey.fromString((await readFile(join(root, 'hostile', 'secret.key'), 'utf8')).trim());
  hostile = await Endpoint.bind({ secretKey: key, bindAddr: ['127.0.0.1:0'] });
  conn = await hostile.connect(EndpointAddr.from({ id: service.networking.identity.endpointId, directAddresses: [`127.0.0.1:${portA}`] }), XFER_ALPN);
  return async () => {
    await hostile.close({ graceMs: 50 });
    await service.shutdown();
    await rm(root, { recursive: true, force: true });
  };
}, 60_000);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let idCounter = 0;
const newId = (): string => createHash('sha256').update(`hostile ${idCounter++} ${Date.now()}`).digest('hex').slice(0, 32);
const file = (path: string, size = 0, root = toHex(fileRoot(0, CS, new Uint8Array(0)))) => ({ path, kind: 'file', size, mode: 0o644, mtimeUs: 1_700_000_000_000_000, root });

/** Offer `manifest` (any shape) and return the receiver's first answer. */
async function offerRaw(manifest: unknown): Promise<{ first: ControlMessage | undefined; reader: FrameReader; writer: WritableStreamDefaultWriter<Uint8Array> }> {
  const { readable, writable } = await conn.openBi();
  const writer = writable.getWriter();
  await writer.write(encodeFrame(encodeControl({ t: 'offer', v: 1, manifest } as ControlMessage)));
  const reader = new FrameReader(readable);
  const f = await reader.readFrame(1 << 20);
  return { first: f === undefined ? undefined : decodeControl(f), reader, writer };
}

async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      out.push(`${rel}${e.name}${e.isDirectory() ? '/' : ''}`);
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}${e.name}/`);
    }
  };
  await walk(dir, '');
  return out.sort();
}

describe('a hostile sender on sdnet/xfer/1', () => {
  const badPaths = ['/etc/passwd', '../escape', 'a/../../escape', 'a/./b', 'a//b', '', 'a\\..\\b', 'a\u0000b', 'a\u0007b', 'C:evil', 'trailing.', 'trailing ', 'CON', 'aux.txt', 'LPT1', 'cafe\u0301', 'x'.repeat(256), Array.from({ length: 65 }, () => 'd').join('/'), `${'abc/'.repeat(1025)}x`, 'x.sdpart'];
  for (const path of badPaths) {
    it(`refuses the path ${JSON.stringify(path.length > 40 ? `${path.slice(0, 40)}…` : path)} with ERR_TRANSFER_PATH, writing nothing`, async () => {
      const before = await listAll(root);
      const { first } = await offerRaw({ id: newId(), chunkSize: CS, entries: [file('fine.txt'), file(path)] });
      expect(first).toMatchObject({ t: 'reject', code: 'ERR_TRANSFER_PATH' });
      expect((first as { reason: string }).reason).toMatch(/Unsafe path/);
      expect(await listAll(root)).toEqual(before);
    });
  }
  it('refuses case-folding collisions and an entry under a file', async () => {
    for (const entries of [
      [file('Readme'), file('README')],
      [file('a'), file('a/b')],
    ]) {
      const { first } = await offerRaw({ id: newId(), chunkSize: CS, entries });
      expect(first).toMatchObject({ t: 'reject', code: 'ERR_TRANSFER_PATH' });
    }
    expect(await readdir(downloads).catch(() => [])).toEqual([]);
  });
  it('refuses manifests over the limits: 100,001 entries, a bad chunk size, symlink entries; a frame over 16 MiB is reset before allocation', async () => {
    const many = Array.from({ length: XFER_MAX_ENTRIES + 1 }, (_, i) => file(`f${i}`));
    let r = await offerRaw({ id: newId(), chunkSize: CS, entries: many });
    expect(r.first).toMatchObject({ t: 'reject', code: 'ERR_TRANSFER_MANIFEST' });
    r = await offerRaw({ id: newId(), chunkSize: 1000, entries: [] });
    expect(r.first).toMatchObject({ t: 'reject', code: 'ERR_TRANSFER_MANIFEST' });
    r = await offerRaw({ id: newId(), chunkSize: CS, entries: [{ ...file('l'), kind: 'symlink' }] });
    expect(r.first).toMatchObject({ t: 'reject', code: 'ERR_TRANSFER_MANIFEST' });
    // A declared 17 MiB frame: the stream is reset with FRAME_TOO_LARGE from the 4 header bytes.
    const { readable, writable } = await conn.openBi();
    const w = writable.getWriter();
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, 17 * 1024 * 1024);
    await w.write(header);
    const err = await new FrameReader(readable).readFrame(1 << 20).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreamResetError);
    expect((err as StreamResetError).streamCode).toBe(StreamCode.FRAME_TOO_LARGE);
    expect(await readdir(downloads).catch(() => [])).toEqual([]);
  });

  /** Offer one real 3-chunk file and serve it with `mode`'s fault; returns the control stream's last message. */
  async function faultyTransfer(mode: 'bad-tag' | 'mismatch' | 'bad-table'): Promise<{ last: ControlMessage | undefined; id: string; name: string }> {
    const data = new Uint8Array(150_000).map((_, i) => (i * 31) & 0xff);
    const chunks = [0, 1, 2].map((i) => data.subarray(i * CS, Math.min(data.length, (i + 1) * CS)));
    const table = new Uint8Array(96);
    chunks.forEach((c, i) => table.set(createHash('sha256').update(c).digest(), i * 32));
    const id = newId();
    const name = `victim-${mode}.bin`;
    const { first, reader } = await offerRaw({ id, chunkSize: CS, entries: [file(name, data.length, toHex(fileRoot(data.length, CS, table)))] });
    expect(first?.t).toBe('accept');
    const salt = fromHex((first as { salt: string }).salt);
    const aead = chunkAead(deriveChunkKey(FIXTURE_LINK_KEY, salt, fromHex(id), hostile.secretKey.public().toBytes(), service.networking.identity.endpointId.toBytes()));
    let counter = 0n;
    const ac = new AbortController();
    void (async () => {
      for (;;) {
        const bi = await conn.acceptBi({ signal: ac.signal });
        void (async () => {
          const r = new FrameReader(bi.readable);
          const w = bi.writable.getWriter();
          for (;;) {
            const f = await r.readFrame(1 << 20);
            if (f === undefined) break;
            const m = decodeControl(f);
            if (m.t === 'table') {
              const t = mode === 'bad-table' ? table.map((b) => b ^ 1) : table;
              await w.write(encodeFrame(new Uint8Array([FRAME_TABLE, ...t])));
            } else if (m.t === 'get') {
              for (let i = m.first; i < m.first + m.count; i++) {
                const plain = mode === 'mismatch' ? chunks[i]!.map((b) => b ^ 0x55) : chunks[i]!;
                const buf = new Uint8Array(CHUNK_HEADER_BYTES + plain.length + TAG_BYTES);
                buf.set(plain, CHUNK_HEADER_BYTES);
                const frame = sealChunkInPlace(aead, fromHex(id), buf, plain.length, 0, i, counter++, i === 2);
                if (mode === 'bad-tag') frame[frame.length - 1]! ^= 0x80;
                await w.write(encodeFrame(frame));
              }
            }
          }
          await w.close();
        })().catch(() => undefined);
      }
    })().catch(() => undefined);
    cleanups.push(() => ac.abort());
    let last: ControlMessage | undefined;
    for (;;) {
      const f = await reader.readFrame(1 << 20).catch(() => undefined);
      if (f === undefined) break;
      last = decodeControl(f);
      if (last.t === 'fail' || last.t === 'done') break;
    }
    return { last, id, name };
  }

  for (const [mode, code] of [
    ['bad-tag', 'ERR_TRANSFER_CORRUPT'],
    ['mismatch', 'ERR_TRANSFER_CORRUPT'],
    ['bad-table', 'ERR_TRANSFER_TABLE_MISMATCH'],
  ] as const) {
    it(`${mode}: the transfer fails with ${code}; no file under its name, nothing outside the destination`, { timeout: 60_000 }, async () => {
      const outside = (await listAll(root)).filter((p) => !p.startsWith('dest/') && !p.startsWith('service/') && !p.startsWith('hostile/'));
      const { last, id, name } = await faultyTransfer(mode);
      expect(last).toMatchObject({ t: 'fail', code });
      await until(() => events.some((e) => e.transferId === id && e.stage === 'failed'), 'the failed event', 30_000);
      const failed = events.find((e) => e.transferId === id && e.stage === 'failed');
      expect(failed?.error?.code).toBe(code);
      const inDest = await readdir(downloads);
      expect(inDest).not.toContain(name);
      // Only the hidden part may exist; nothing unverified was written to it.
      for (const n of inDest.filter((x) => x.includes(name))) expect(n).toMatch(/^\..*\.sdpart$/);
      if (mode !== 'bad-table') expect(events.filter((e) => e.transferId === id && e.stage === 'chunk-rejected').length).toBeGreaterThanOrEqual(3);
      expect(events.filter((e) => e.transferId === id && e.stage === 'transferring' && (e.bytesDone ?? 0) > 0)).toEqual([]);
      expect((await listAll(root)).filter((p) => !p.startsWith('dest/') && !p.startsWith('service/') && !p.startsWith('hostile/'))).toEqual(outside);
    });
  }
});
