/**
 * Client of the relays' pairing rendezvous (format: rendezvous-wire.ts): register R → our
 * address while a code is shown, look R up when joining with typed words, withdraw R when the
 * pairing ends, is cancelled or expires.
 *
 * @module
 */
import { boundedRequest } from '../../util/bounded-http.ts';
import type { NodeTlsOptions } from '../../relay/client/node-transport.ts';
import { SdnetError } from '../../util/errors.ts';
import { encodeDeleteRequest, encodePutRequest, parseRecord, RENDEZVOUS_PATH_PREFIX, type RendezvousRecord } from './rendezvous-wire.ts';

/** Largest answer read from a relay (bytes). */
const MAX_ANSWER_BYTES = 4096;
/** One rendezvous request may take this long (ms). */
export const RENDEZVOUS_REQUEST_TIMEOUT_MS = 5_000;

/** A rendezvous request failed (network, or the relay said no). */
export class RendezvousError extends SdnetError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super('ERR_RENDEZVOUS', message, options);
    this.name = 'RendezvousError';
    this.status = status;
  }
}

export interface RendezvousClientOptions {
  readonly tls?: NodeTlsOptions;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

async function request(relay: string, method: 'GET' | 'PUT' | 'DELETE', r: string, body: string | undefined, options: RendezvousClientOptions): Promise<{ status: number; body: string }> {
  const answer = await boundedRequest({
    url: new URL(`${RENDEZVOUS_PATH_PREFIX.slice(1)}${r}`, relay.endsWith('/') ? relay : `${relay}/`),
    method,
    ...(body !== undefined ? { body, contentType: 'application/json' } : {}),
    maxBytes: MAX_ANSWER_BYTES,
    timeoutMs: options.timeoutMs ?? RENDEZVOUS_REQUEST_TIMEOUT_MS,
    tls: options.tls,
    signal: options.signal,
    name: relay,
    fail: (message, o) => new RendezvousError(message, undefined, o),
  });
  return { status: answer.status, body: Buffer.from(answer.body).toString('utf8') };
}

/**
 * Register (or refresh) `r` → `record` at `relay` for `ttlMs`, signed by the record's key.
 *
 * @throws {RendezvousError} when the relay is unreachable or refuses
 */
export async function registerRendezvous(relay: string, r: string, record: RendezvousRecord, ttlMs: number, sign: (bytes: Uint8Array) => Uint8Array, options: RendezvousClientOptions = {}): Promise<void> {
  const res = await request(relay, 'PUT', r, encodePutRequest(r, record, ttlMs, Date.now(), sign), options);
  if (res.status !== 204 && res.status !== 200) throw new RendezvousError(`${relay} refused the rendezvous registration (${res.status}${res.body ? `: ${res.body.slice(0, 200)}` : ''})`, res.status);
}

/**
 * Withdraw `r` at `relay`.
 *
 * @throws {RendezvousError} when the relay is unreachable or refuses
 */
export async function withdrawRendezvous(relay: string, r: string, endpointId: string, sign: (bytes: Uint8Array) => Uint8Array, options: RendezvousClientOptions = {}): Promise<void> {
  const res = await request(relay, 'DELETE', r, encodeDeleteRequest(r, endpointId, Date.now(), sign), options);
  if (res.status !== 204 && res.status !== 200 && res.status !== 404) throw new RendezvousError(`${relay} refused to withdraw the rendezvous (${res.status})`, res.status);
}

/**
 * Look `r` up at `relay`: the record, or undefined when the relay has none (404) or answers
 * something that is not a record.
 *
 * @throws {RendezvousError} when the relay is unreachable, rate-limits us, or fails
 */
export async function lookupRendezvous(relay: string, r: string, options: RendezvousClientOptions = {}): Promise<RendezvousRecord | undefined> {
  const res = await request(relay, 'GET', r, undefined, options);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new RendezvousError(`${relay} answered ${res.status} to a rendezvous lookup`, res.status);
  return parseRecord(res.body);
}
