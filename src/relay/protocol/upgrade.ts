/**
 * Validation of the relay's HTTP/1.1 upgrade request, exactly as iroh's relay does it
 * (`shared/docs/iroh-wire.md` §1.2, iroh `server/http_server.rs` `handle_relay_ws_upgrade`):
 *
 * - `Upgrade` must be exactly `websocket` (byte for byte, lower case);
 * - `Sec-WebSocket-Key` must be present;
 * - `Sec-WebSocket-Version` must be exactly `13`, else 400 with `Sec-WebSocket-Version: 13`;
 * - `Sec-WebSocket-Protocol` must be present, ASCII, and name a known version; the highest
 *   offered is chosen.
 *
 * Pure: the HTTP server passes the parsed request in and writes the decision out. Also the
 * bearer token of a request (`Authorization: Bearer`, or `?token=` from browsers, §1.2).
 *
 * @module
 */
import { negotiateVersion, type ProtocolVersion } from './version.ts';

/** The parts of a request the validation reads. Header names are lower case (as Node gives them). */
export interface UpgradeRequest {
  method: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type UpgradeDecision =
  | { ok: true; version: ProtocolVersion; key: string }
  | { ok: false; status: number; message: string; headers?: Record<string, string> };

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

// RFC 9110 field values are visible ASCII, space and tab; Node hands other bytes through as latin1.
const ASCII = /^[\t\x20-\x7e]*$/;

/** Decide on an upgrade request to `/relay`. */
export function validateUpgradeRequest(req: UpgradeRequest): UpgradeDecision {
  if (req.method !== 'GET') return { ok: false, status: 405, message: 'The relay endpoint takes GET only', headers: { Allow: 'GET' } };
  const upgrade = single(req.headers['upgrade']);
  if (upgrade === undefined) return { ok: false, status: 400, message: 'Missing header: upgrade' };
  // iroh-wire §1.2: Upgrade must equal "websocket" byte for byte.
  if (upgrade !== 'websocket') return { ok: false, status: 400, message: 'Invalid header upgrade: value must be websocket' };
  const key = single(req.headers['sec-websocket-key']);
  if (key === undefined) return { ok: false, status: 400, message: 'Missing header: sec-websocket-key' };
  const version = single(req.headers['sec-websocket-version']);
  if (version === undefined) return { ok: false, status: 400, message: 'Missing header: sec-websocket-version' };
  // iroh-wire §1.2: version must be 13, else 400 naming the supported version.
  if (version !== '13') return { ok: false, status: 400, message: 'Unsupported WebSocket version', headers: { 'Sec-WebSocket-Version': '13' } };
  const protocols = single(req.headers['sec-websocket-protocol']);
  if (protocols === undefined) return { ok: false, status: 400, message: 'Missing header: sec-websocket-protocol' };
  if (!ASCII.test(protocols)) return { ok: false, status: 400, message: 'Invalid header sec-websocket-protocol: value is not ascii' };
  const chosen = negotiateVersion(protocols);
  if (chosen === undefined) {
    return { ok: false, status: 400, message: `Unsupported relay version: we support iroh-relay-v1, iroh-relay-v2; you support ${protocols.slice(0, 200)}` };
  }
  return { ok: true, version: chosen, key };
}

/**
 * The bearer token of a request: `Authorization: Bearer <token>`, or the `token` query
 * parameter that browsers use because they cannot set headers (iroh-wire §1.2).
 */
export function bearerToken(headers: UpgradeRequest['headers'], url: string): string | undefined {
  const auth = single(headers['authorization']);
  if (auth !== undefined) {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth);
    if (m) return m[1];
  }
  const q = url.indexOf('?');
  if (q >= 0) {
    const token = new URLSearchParams(url.slice(q + 1)).get('token');
    if (token !== null && token !== '') return token;
  }
  return undefined;
}
