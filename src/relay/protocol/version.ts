/**
 * Relay protocol version negotiation (`shared/docs/iroh-wire.md` §1.2, §1.12): the client
 * offers `iroh-relay-v2, iroh-relay-v1` as WebSocket subprotocols, the relay answers with the
 * highest one it knows. v1 and v2 differ only in `Health` (11, v1) versus `Status` (13, v2).
 *
 * @module
 */

/** A negotiated relay protocol version. */
export type ProtocolVersion = 1 | 2;

export const SUBPROTOCOL_V1 = 'iroh-relay-v1';
export const SUBPROTOCOL_V2 = 'iroh-relay-v2';

/** What a client offers, in iroh's order. */
export const OFFERED_SUBPROTOCOLS: readonly string[] = [SUBPROTOCOL_V2, SUBPROTOCOL_V1];

/** The subprotocol token of a version. */
export function subprotocolOf(version: ProtocolVersion): string {
  return version === 2 ? SUBPROTOCOL_V2 : SUBPROTOCOL_V1;
}

/** The version a subprotocol token names exactly, or `undefined`. */
export function versionOfSubprotocol(token: string): ProtocolVersion | undefined {
  if (token === SUBPROTOCOL_V2) return 2;
  if (token === SUBPROTOCOL_V1) return 1;
  return undefined;
}

/**
 * The server's choice from a `Sec-WebSocket-Protocol` request header: split on `,`, trim,
 * keep the known tokens, take the highest (iroh `handle_relay_ws_upgrade`). `undefined` when
 * none is known.
 */
export function negotiateVersion(header: string): ProtocolVersion | undefined {
  let best: ProtocolVersion | undefined;
  for (const part of header.split(',')) {
    const v = versionOfSubprotocol(part.trim());
    if (v !== undefined && (best === undefined || v > best)) best = v;
  }
  return best;
}
