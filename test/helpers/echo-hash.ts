/**
 * The echo/hash stream protocol of `relay-iroh-peer.ts`, for our endpoints: on each
 * bidirectional stream the opener writes a one-byte command, `e` (echo the rest back) or `h`
 * (answer the SHA-256 of the rest), then its data and FIN. Both sides of a test can be ours
 * or iroh's.
 */
import { createHash } from 'node:crypto';
import type { Connection, Endpoint } from '../../src/index.ts';
import { readAll } from './iroh.ts';

const E = 0x65;
const H = 0x68;

/** Serve echo/hash streams on every connection of `ep` until it closes. */
export async function serveEchoHash(ep: Endpoint): Promise<void> {
  for await (const incoming of ep.accept()) {
    void (async () => {
      const conn = await incoming.accept();
      await serveConnection(conn);
    })().catch(() => undefined);
  }
}

/** Serve echo/hash streams on one connection until it closes. */
export async function serveConnection(conn: Connection): Promise<void> {
  for (;;) {
    let bi;
    try {
      bi = await conn.acceptBi();
    } catch {
      return;
    }
    void (async () => {
      const reader = bi.readable.getReader();
      const writer = bi.writable.getWriter();
      let cmd: number | undefined;
      const hash = createHash('sha256');
      const echo: Uint8Array[] = [];
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let chunk = value;
        if (cmd === undefined) {
          cmd = chunk[0];
          chunk = chunk.subarray(1);
        }
        if (cmd === E) echo.push(chunk.slice());
        else hash.update(chunk);
      }
      if (cmd === E) for (const c of echo) await writer.write(c);
      else await writer.write(new Uint8Array(hash.digest()));
      await writer.close();
    })().catch(() => undefined);
  }
}

/** Echo `message` on a new stream; returns what came back. */
export async function echo(conn: Connection, message: string): Promise<string> {
  const bi = await conn.openBi();
  const writer = bi.writable.getWriter();
  await writer.write(Uint8Array.from([E, ...new TextEncoder().encode(message)]));
  await writer.close();
  return new TextDecoder().decode(await readAll(bi.readable));
}

export interface HashResult {
  bytes: number;
  sentHash: string;
  peerHash: string;
}

/**
 * Send `bytes` bytes (`block` repeated) on a new stream and compare hashes. `onProgress` is
 * called after each write with the bytes written so far.
 */
export async function sendHashed(conn: Connection, block: Uint8Array, bytes: number, onProgress?: (sent: number) => void | Promise<void>): Promise<HashResult> {
  const bi = await conn.openBi();
  const writer = bi.writable.getWriter();
  await writer.write(Uint8Array.of(H));
  const hash = createHash('sha256');
  const chunk = 64 * 1024;
  for (let sent = 0; sent < bytes; ) {
    const n = Math.min(chunk, bytes - sent);
    const offset = sent % block.length;
    const part = block.subarray(offset, Math.min(block.length, offset + n));
    hash.update(part);
    await writer.write(part);
    sent += part.length;
    await onProgress?.(sent);
  }
  await writer.close();
  const peer = await readAll(bi.readable);
  return { bytes, sentHash: hash.digest('hex'), peerHash: Buffer.from(peer).toString('hex') };
}
