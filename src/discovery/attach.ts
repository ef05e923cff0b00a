/**
 * Attach LAN discovery (mDNS) to an endpoint: our QUIC ports are what the SRV records carry,
 * our relay and user-data follow the endpoint's, and the endpoint resolves ids through it.
 *
 * @module
 */
import type { Endpoint } from '../endpoint/endpoint.ts';
import { MdnsDiscovery, type MdnsOptions } from './mdns.ts';

/**
 * Start mDNS for `ep` and add it to its lookups; undefined (after `onError`) when no mDNS
 * socket can be opened — discovery on the LAN is then off, everything else works.
 */
export async function attachMdns(ep: Endpoint, options: Partial<Pick<MdnsOptions, 'port' | 'expiryMs' | 'onError'>> = {}): Promise<MdnsDiscovery | undefined> {
  let mdns: MdnsDiscovery;
  try {
    mdns = await MdnsDiscovery.start({
      id: ep.id,
      ports: () => {
        const out: { v4?: number; v6?: number } = {};
        for (const a of ep.boundSockets) {
          if (a.family === 4) out.v4 ??= a.port;
          else out.v6 ??= a.port;
        }
        return out;
      },
      ...options,
    });
  } catch (err) {
    options.onError?.(err);
    return undefined;
  }
  ep.addLookup(mdns);
  return mdns;
}
