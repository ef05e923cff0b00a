/**
 * HTTP client of pkarr relays (`PUT/GET <relay>/<z32>`, pairing-transfer.md C): publish a
 * signed packet, resolve one. A pkarr relay URL is the base the key is appended to, e.g.
 * `https://relay.example/pkarr` (sdnet-relay) or `https://dns.iroh.link/pkarr` (n0).
 *
 * @module
 */
import http from 'node:http';
import https from 'node:https';
import type { NodeTlsOptions } from '../relay/client/node-transport.ts';
import type { PublicKey } from '../identity/keys.ts';
import { SdnetError } from '../util/errors.ts';
import { MAX_PKARR_RESPONSE_BYTES } from './limits.ts';
import { verifyPacket, z32, type SignedPacket } from './pkarr.ts';
import type { DnsMessage } from './dns.ts';

/** One pkarr request may take this long (ms). */
export const PKARR_REQUEST_TIMEOUT_MS = 5_000;

/** A pkarr request failed (network, or the relay said no: `status`). */
export class PkarrError extends SdnetError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super('ERR_PKARR', message, options);
    this.name = 'PkarrError';
    this.status = status;
  }
}

export interface PkarrClientOptions {
  readonly tls?: NodeTlsOptions;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export { pkarrUrlOfRelay } from './pkarr.ts';

function request(base: string, key: PublicKey, method: 'GET' | 'PUT', body: Uint8Array | undefined, options: PkarrClientOptions): Promise<{ status: number; body: Uint8Array }> {
  const url = new URL(z32(key), base.endsWith('/') ? base : `${base}/`);
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, value?: { status: number; body: Uint8Array }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value!);
    };
    const headers: Record<string, string | number> = { 'user-agent': 'sdnet' };
    if (body !== undefined) {
      headers['content-type'] = 'application/pkarr.org/relays#payload';
      headers['content-length'] = body.length;
    }
    const req = (secure ? https : http).request(
      url,
      {
        method,
        headers,
        agent: false,
        ...(secure && options.tls?.ca ? { ca: options.tls.ca } : {}),
        ...(secure && options.tls?.servername ? { servername: options.tls.servername } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_PKARR_RESPONSE_BYTES) {
            req.destroy();
            finish(new PkarrError(`${base} answered more than ${MAX_PKARR_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, body: new Uint8Array(Buffer.concat(chunks)) }));
        res.on('error', (err) => finish(new PkarrError(`${base}: ${err.message}`, undefined, { cause: err })));
      },
    );
    req.on('error', (err) => finish(new PkarrError(`${base}: ${err.message}`, undefined, { cause: err })));
    const ms = options.timeoutMs ?? PKARR_REQUEST_TIMEOUT_MS;
    const timer = setTimeout(() => {
      req.destroy();
      finish(new PkarrError(`${base} did not answer within ${ms} ms`));
    }, ms);
    const onAbort = (): void => {
      req.destroy();
      finish(new PkarrError('aborted', undefined, { cause: options.signal?.reason }));
    };
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    req.end(body);
  });
}

/**
 * Publish a signed packet body for `key` at the pkarr relay `base`.
 *
 * @throws {PkarrError} unless the relay accepted it (2xx)
 */
export async function publishPacket(base: string, key: PublicKey, body: Uint8Array, options: PkarrClientOptions = {}): Promise<void> {
  const res = await request(base, key, 'PUT', body, options);
  if (res.status < 200 || res.status >= 300) throw new PkarrError(`${base} refused the packet: HTTP ${res.status}`, res.status);
}

/**
 * Resolve `key` at the pkarr relay `base`: the verified packet, or undefined when it has none.
 *
 * @throws {PkarrError} on a network failure, an unexpected status or a packet that does not verify
 */
export async function resolvePacket(base: string, key: PublicKey, options: PkarrClientOptions = {}): Promise<(SignedPacket & { message: DnsMessage }) | undefined> {
  const res = await request(base, key, 'GET', undefined, options);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new PkarrError(`${base}: HTTP ${res.status}`, res.status);
  try {
    return verifyPacket(key, res.body);
  } catch (err) {
    throw new PkarrError(`${base} answered a packet that does not verify: ${(err as Error).message}`, res.status, { cause: err });
  }
}
