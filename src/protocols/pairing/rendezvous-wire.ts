/**
 * The relays' pairing rendezvous, wire format — shared by the client (rendezvous.ts) and
 * `sdnet-relay` (relay-server/src/rendezvous.ts).
 *
 * A device that shows a code registers R → its EndpointId, relay URL and direct addresses at
 * its relays, so a device that only has the typed words can find it across networks:
 *
 * | request                | body                                          | answer |
 * |------------------------|-----------------------------------------------|--------|
 * | `PUT /pair/<R>`        | `{v, endpoint_id, relay, addrs, ttl_ms, ts, sig}` | 204; 400 malformed; 401 bad signature or stale `ts`; 409 R held by another key; 413 too large; 429 rate-limited; 507 store full |
 * | `GET /pair/<R>`        | —                                             | 200 `{v, endpoint_id, relay, addrs, expires_in_ms}`; 404; 429 |
 * | `DELETE /pair/<R>`     | `{v, endpoint_id, ts, sig}`                   | 204 (also when nothing was there); 401; 409; 429 |
 *
 * R is 8 lower-case hex digits. `sig` is the registering EndpointId's Ed25519 signature over
 * {@link rendezvousSignedBytes}: only the holder of the key can claim, refresh or withdraw R,
 * and a signed request is valid only within {@link RENDEZVOUS_MAX_SKEW_MS} of its `ts`, for
 * its method and its R. A record lives at most {@link RENDEZVOUS_MAX_TTL_MS}.
 *
 * What a lookup returns is a hint, never trusted: the joiner dials it and the CPace exchange
 * decides. A forged answer buys its author one online guess at S (96 bits), nothing more.
 *
 * @module
 */
import { base64 } from '@scure/base';
import { PublicKey, Signature } from '../../identity/keys.ts';
import { RelayUrl } from '../../identity/relay-url.ts';
import { SocketAddr } from '../../identity/socket-addr.ts';
import { utf8 } from '../../util/bytes.ts';

export const RENDEZVOUS_PATH_PREFIX = '/pair/';
export const RENDEZVOUS_VERSION = 1;
/** A record lives at most this long (ms): a code's lifetime. */
export const RENDEZVOUS_MAX_TTL_MS = 5 * 60_000;
/** A signed request is accepted this long before or after its timestamp (ms). */
export const RENDEZVOUS_MAX_SKEW_MS = 2 * 60_000;
/** Largest request body (bytes). */
export const RENDEZVOUS_MAX_BODY_BYTES = 4096;
/** Direct addresses in a record. */
export const RENDEZVOUS_MAX_ADDRS = 8;

const R_PATTERN = /^[0-9a-f]{8}$/;

/** Whether `r` is a rendezvous id (8 lower-case hex digits). */
export function isRendezvousId(r: string): boolean {
  return R_PATTERN.test(r);
}

/** What a lookup finds. */
export interface RendezvousRecord {
  readonly endpointId: string;
  readonly relay: string | null;
  readonly addrs: readonly string[];
}

/** The bytes a rendezvous request signs. */
export function rendezvousSignedBytes(method: 'PUT' | 'DELETE', r: string, ts: number, record: { endpointId: string; relay?: string | null; addrs?: readonly string[]; ttlMs?: number }): Uint8Array {
  const parts = ['sdnet-pair-rendezvous/1', method, r, String(ts), record.endpointId];
  if (method === 'PUT') parts.push(record.relay ?? '-', (record.addrs ?? []).join(','), String(record.ttlMs ?? 0));
  return utf8(parts.join('\n'));
}

/** A request the server refuses, with its HTTP status. */
export class RendezvousRequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** A PUT body as the server reads it. */
export interface PutRequest {
  readonly record: RendezvousRecord;
  readonly ttlMs: number;
  readonly ts: number;
}

function parseJson(body: Uint8Array | string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(typeof body === 'string' ? body : new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new RendezvousRequestError(400, 'body is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RendezvousRequestError(400, 'body is not an object');
  const o = v as Record<string, unknown>;
  if (o.v !== RENDEZVOUS_VERSION) throw new RendezvousRequestError(400, 'unknown version');
  return o;
}

function checkSigned(o: Record<string, unknown>, method: 'PUT' | 'DELETE', r: string, now: number, record: { endpointId: string; relay?: string | null; addrs?: readonly string[]; ttlMs?: number }): number {
  const ts = o.ts;
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts)) throw new RendezvousRequestError(400, 'ts is not a time');
  if (Math.abs(now - ts) > RENDEZVOUS_MAX_SKEW_MS) throw new RendezvousRequestError(401, 'ts is too far from now');
  if (typeof o.sig !== 'string' || o.sig.length > 100) throw new RendezvousRequestError(400, 'sig is missing');
  let sig: Uint8Array;
  try {
    sig = base64.decode(o.sig);
  } catch {
    throw new RendezvousRequestError(400, 'sig is not base64');
  }
  if (sig.length !== 64) throw new RendezvousRequestError(400, 'sig is not 64 bytes');
  let ok = false;
  try {
    ok = PublicKey.fromString(record.endpointId).verify(rendezvousSignedBytes(method, r, ts, record), Signature.fromBytes(sig));
  } catch {
    ok = false;
  }
  if (!ok) throw new RendezvousRequestError(401, 'bad signature');
  return ts;
}

function endpointIdOf(o: Record<string, unknown>): string {
  if (typeof o.endpoint_id !== 'string' || !/^[0-9a-f]{64}$/.test(o.endpoint_id)) throw new RendezvousRequestError(400, 'endpoint_id is not 64 hex');
  try {
    PublicKey.fromString(o.endpoint_id);
  } catch {
    throw new RendezvousRequestError(400, 'endpoint_id is not a key');
  }
  return o.endpoint_id;
}

/**
 * Read and verify a PUT body for `r` at time `now` (ms since the epoch).
 *
 * @throws {RendezvousRequestError} 400 / 401
 */
export function parsePutRequest(r: string, body: Uint8Array | string, now: number): PutRequest {
  const o = parseJson(body);
  const endpointId = endpointIdOf(o);
  let relay: string | null = null;
  if (o.relay !== null && o.relay !== undefined) {
    if (typeof o.relay !== 'string' || o.relay.length > 512) throw new RendezvousRequestError(400, 'relay is not a URL');
    try {
      relay = RelayUrl.parse(o.relay).toString();
    } catch {
      throw new RendezvousRequestError(400, 'relay is not a URL');
    }
    if (relay !== o.relay) throw new RendezvousRequestError(400, 'relay is not in canonical form');
  }
  if (!Array.isArray(o.addrs) || o.addrs.length > RENDEZVOUS_MAX_ADDRS) throw new RendezvousRequestError(400, `addrs is not a list of at most ${RENDEZVOUS_MAX_ADDRS} addresses`);
  const addrs: string[] = [];
  for (const a of o.addrs) {
    if (typeof a !== 'string' || a.length > 64) throw new RendezvousRequestError(400, 'addrs holds a bad address');
    try {
      if (SocketAddr.parse(a).toString() !== a) throw new Error('not canonical');
    } catch {
      throw new RendezvousRequestError(400, 'addrs holds a bad address');
    }
    addrs.push(a);
  }
  const ttlMs = o.ttl_ms;
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RendezvousRequestError(400, 'ttl_ms is not a positive integer');
  const ts = checkSigned(o, 'PUT', r, now, { endpointId, relay, addrs, ttlMs });
  return { record: { endpointId, relay, addrs }, ttlMs: Math.min(ttlMs, RENDEZVOUS_MAX_TTL_MS), ts };
}

/**
 * Read and verify a DELETE body for `r`; resolves with the key that signed it.
 *
 * @throws {RendezvousRequestError} 400 / 401
 */
export function parseDeleteRequest(r: string, body: Uint8Array | string, now: number): { endpointId: string; ts: number } {
  const o = parseJson(body);
  const endpointId = endpointIdOf(o);
  const ts = checkSigned(o, 'DELETE', r, now, { endpointId });
  return { endpointId, ts };
}

/** A PUT body, signed. */
export function encodePutRequest(r: string, record: RendezvousRecord, ttlMs: number, ts: number, sign: (bytes: Uint8Array) => Uint8Array): string {
  const sig = sign(rendezvousSignedBytes('PUT', r, ts, { ...record, ttlMs }));
  return JSON.stringify({ v: RENDEZVOUS_VERSION, endpoint_id: record.endpointId, relay: record.relay, addrs: record.addrs, ttl_ms: ttlMs, ts, sig: base64.encode(sig) });
}

/** A DELETE body, signed. */
export function encodeDeleteRequest(r: string, endpointId: string, ts: number, sign: (bytes: Uint8Array) => Uint8Array): string {
  return JSON.stringify({ v: RENDEZVOUS_VERSION, endpoint_id: endpointId, ts, sig: base64.encode(sign(rendezvousSignedBytes('DELETE', r, ts, { endpointId }))) });
}

/** A GET answer. */
export function encodeRecord(record: RendezvousRecord, expiresInMs: number): string {
  return JSON.stringify({ v: RENDEZVOUS_VERSION, endpoint_id: record.endpointId, relay: record.relay, addrs: record.addrs, expires_in_ms: Math.max(0, Math.round(expiresInMs)) });
}

/** Read a GET answer (from a relay we do not trust: validated like any peer input); undefined if malformed. */
export function parseRecord(body: string): RendezvousRecord | undefined {
  try {
    const o = parseJson(body);
    const endpointId = endpointIdOf(o);
    const relay = o.relay === null || o.relay === undefined ? null : RelayUrl.parse(String(o.relay)).toString();
    if (!Array.isArray(o.addrs)) return undefined;
    const addrs = o.addrs.slice(0, RENDEZVOUS_MAX_ADDRS).map((a) => SocketAddr.parse(String(a)).toString());
    return { endpointId, relay, addrs };
  } catch {
    return undefined;
  }
}
