/**
 * HTTP client of pkarr relays (`PUT/GET <relay>/<z32>`, pairing-transfer.md C): publish a
 * signed packet, resolve one. A pkarr relay URL is the base the key is appended to, e.g.
 * `https://relay.example/pkarr` (sdnet-relay) or `https://dns.iroh.link/pkarr` (n0).
 *
 * @module
 */
import { nodeCryptoProvider } from '../transport/crypto/node-provider.ts';
import { boundedRequest } from '../util/bounded-http.ts';
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
  return boundedRequest({
    url: new URL(z32(key), base.endsWith('/') ? base : `${base}/`),
    method,
    ...(body !== undefined ? { body, contentType: 'application/pkarr.org/relays#payload' } : {}),
    maxBytes: MAX_PKARR_RESPONSE_BYTES,
    timeoutMs: options.timeoutMs ?? PKARR_REQUEST_TIMEOUT_MS,
    tls: options.tls,
    signal: options.signal,
    name: base,
    fail: (message, o) => new PkarrError(message, undefined, o),
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
    return verifyPacket(key, res.body, nodeCryptoProvider);
  } catch (err) {
    throw new PkarrError(`${base} answered a packet that does not verify: ${(err as Error).message}`, res.status, { cause: err });
  }
}
