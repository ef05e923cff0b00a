/**
 * The Node platform of the endpoint ({@link EndpointPlatform}): node:dgram, `ws`, node:http,
 * node:os, node:crypto.
 *
 * @module
 */
import { networkInterfaces } from 'node:os';
import { nodeWebSocketTransport } from '../relay/client/node-transport.ts';
import { nodeCryptoProvider } from '../transport/crypto/node-provider.ts';
import { keyLogWriter } from '../transport/io/keylog.ts';
import { UdpSocket } from '../transport/io/udp.ts';
import { probeRelay } from '../transport/paths/relay-probe.ts';
import type { EndpointPlatform } from './platform.ts';
import { x509Credentials } from './x509.ts';
import { PkarrLookup } from '../discovery/lookup.ts';

export const nodePlatform: EndpointPlatform = {
  name: 'node',
  crypto: nodeCryptoProvider,
  defaultBind: ['0.0.0.0:0', '[::]:0'],
  bindUdp: (options) => UdpSocket.bind(options),
  relayTransport: (tls) => nodeWebSocketTransport(tls),
  probeRelay,
  interfaceAddresses(family) {
    const out: string[] = [];
    for (const list of Object.values(networkInterfaces())) {
      for (const info of list ?? []) {
        if ((info.family === 'IPv4') !== (family === 4) || info.scopeid) continue;
        out.push(info.address);
      }
    }
    return out;
  },
  keyLog: () => keyLogWriter(),
  x509Credentials,
  pkarrLookup: (options) => new PkarrLookup({ relays: [...options.relays], secretKey: options.secretKey, ...(options.tls ? { tls: options.tls } : {}) }),
};
