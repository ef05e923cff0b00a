/**
 * Drive a TLS client and server session against each other in memory, optionally tampering
 * with each handshake message in flight.
 */
import type { CryptoSession, EncryptionLevel } from '../../src/transport/quic/tls/index.ts';
import { TlsClientSession, TlsServerSession, type TlsClientConfig, type TlsServerConfig } from '../../src/transport/quic/tls/index.ts';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import { SecretKey } from '../../src/identity/index.ts';
import { fromHex } from '../../src/util/bytes.ts';
import { tlsServerName } from '../../src/identity/index.ts';

export type Tamper = (from: 'client' | 'server', level: EncryptionLevel, data: Uint8Array, index: number) => Uint8Array;

export interface PumpResult {
  /** The side whose handleHandshakeData threw, and what. */
  failure?: { side: 'client' | 'server'; error: unknown };
  /** Every message delivered, in order (after tampering). */
  messages: { from: 'client' | 'server'; level: EncryptionLevel; data: Uint8Array }[];
}

export function pump(client: CryptoSession, server: CryptoSession, tamper?: Tamper): PumpResult {
  const messages: PumpResult['messages'] = [];
  let index = 0;
  for (let round = 0; round < 20; round++) {
    let moved = false;
    for (const [from, to] of [
      [client, server],
      [server, client],
    ] as const) {
      for (let out = from.pollHandshakeData(); out !== undefined; out = from.pollHandshakeData()) {
        moved = true;
        const data = tamper ? tamper(from.side, out.level, out.data, index) : out.data;
        index++;
        messages.push({ from: from.side, level: out.level, data });
        try {
          to.handleHandshakeData(out.level, data);
        } catch (error) {
          return { failure: { side: to.side, error }, messages };
        }
      }
    }
    if (!moved) break;
  }
  return { messages };
}

export const utf = (s: string) => new TextEncoder().encode(s);
export const serverKey = SecretKey.fromBytes(fromHex('11'.repeat(32)));
export const clientKey = SecretKey.fromBytes(fromHex('22'.repeat(32)));

/** A raw-public-key (iroh profile) client/server pair in QUIC mode. */
export function rawPair(options: { client?: Partial<TlsClientConfig>; server?: Partial<TlsServerConfig> } = {}): { client: TlsClientSession; server: TlsServerSession } {
  const server = new TlsServerSession({
    provider: nodeCryptoProvider,
    certificate: { type: 'raw-public-key', secretKey: serverKey.toBytes() },
    alpnProtocols: [utf('test/1')],
    transportParameters: utf('server-params'),
    ...options.server,
  });
  const client = new TlsClientSession({
    provider: nodeCryptoProvider,
    certificate: { type: 'raw-public-key', secretKey: clientKey.toBytes() },
    alpnProtocols: [utf('test/1')],
    transportParameters: utf('client-params'),
    expectedServerKey: serverKey.public().toBytes(),
    serverName: tlsServerName(serverKey.public()),
    ...options.client,
  });
  return { client, server };
}
