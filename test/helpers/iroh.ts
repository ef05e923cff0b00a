/**
 * Helpers for tests against the real iroh (`@number0/iroh`), whose API moves bytes as
 * `Array<number>`.
 */
import iroh from '@number0/iroh';
import { createHash, type Hash } from 'node:crypto';
import { EndpointAddr, SecretKey } from '../../src/identity/index.ts';

export const toArray = (b: Uint8Array): number[] => Array.from(b);
export const fromArray = (a: number[]): Uint8Array => Uint8Array.from(a);
export const alpnArray = (s: string): number[] => Array.from(new TextEncoder().encode(s));

/** A minimal iroh endpoint (no relays, no discovery) bound to 127.0.0.1. */
export async function bindIroh(options: { alpns?: string[]; secretKey?: SecretKey } = {}): Promise<iroh.Endpoint> {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  if (options.alpns) b.alpns(options.alpns.map(alpnArray));
  if (options.secretKey) b.secretKey(toArray(options.secretKey.toBytes()));
  b.bindAddr('127.0.0.1:0');
  return b.bind();
}

/** Our EndpointAddr for an iroh endpoint on loopback. */
export function irohAddr(ep: iroh.Endpoint): EndpointAddr {
  const port = Number(ep.boundSockets()[0]!.split(':').pop());
  return EndpointAddr.from({ id: ep.id().toString(), directAddresses: [`127.0.0.1:${port}`] });
}

/** iroh's EndpointAddr for one of our endpoints on loopback. */
export function irohAddrOf(id: string, port: number): iroh.EndpointAddr {
  return new iroh.EndpointAddr(iroh.EndpointId.fromString(id), null, [`127.0.0.1:${port}`]);
}

/** A repeating pattern: `blocks` copies of a 1 MiB block, as one Array for iroh and bytes for us. */
export function pattern(seedByte: number): { block: Uint8Array; blockArray: number[] } {
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + seedByte + (i >> 12)) & 0xff;
  return { block, blockArray: toArray(block) };
}

export function hashOfRepeated(block: Uint8Array, times: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < times; i++) h.update(block);
  return h.digest('hex');
}

/** Read an iroh stream to its end, hashing as it goes. Returns [bytes, hex digest]. */
export async function irohReadHashed(recv: iroh.RecvStream, hash: Hash = createHash('sha256')): Promise<[number, string]> {
  let n = 0;
  for (;;) {
    // iroh's read waits for data and returns an empty array once the stream has finished.
    const chunk = await recv.read(1 << 20);
    if (chunk.length === 0) break;
    n += chunk.length;
    hash.update(Uint8Array.from(chunk));
  }
  return [n, hash.digest('hex')];
}

/** Read one of our web streams to the end, hashing. */
export async function readHashed(readable: ReadableStream<Uint8Array>): Promise<[number, string]> {
  const h = createHash('sha256');
  let n = 0;
  for await (const c of readable) {
    h.update(c);
    n += c.length;
  }
  return [n, h.digest('hex')];
}

export async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of readable) parts.push(c);
  return Uint8Array.from(Buffer.concat(parts));
}
