/**
 * What pairing needs from LAN discovery (path (a) of finding the initiator): advertise R
 * while a code is shown, and find the devices that advertise a given R. The mDNS module of
 * the discovery issue fills this in (iroh's `user-data` TXT attribute, as
 * `user-data=pair:<R hex>`, shared/docs/pairing-transfer.md A.3); without one, pairing uses
 * the relays' rendezvous and QR / `--node-id` only.
 *
 * Whatever a discovery reports is a hint: the joiner dials it, and the CPace exchange
 * decides. A forged answer buys one online guess at the 96-bit secret, nothing more.
 *
 * ```ts
 * const mdns: PairingDiscovery = {
 *   name: 'mdns',
 *   advertise: (r) => { setUserData(`pair:${r}`); return () => setUserData(undefined); },
 *   lookup: (r, signal) => peersWithUserData(`pair:${r}`, signal), // AsyncIterable<EndpointAddr>
 * };
 * Core.init({ dataDir, modules: { pairing: pairingModule({ discovery: [mdns] }) } });
 * ```
 *
 * @module
 */
import type { EndpointAddr } from '../../identity/endpoint-addr.ts';

/** The user-data value a discovery advertises for a code's R. */
export function pairingUserData(rendezvousId: string): string {
  return `pair:${rendezvousId}`;
}

export interface PairingDiscovery {
  /** For logs (`mdns`). */
  readonly name: string;
  /**
   * Start advertising R; the function returned stops it (called when the pairing ends, is
   * cancelled or expires — R must not stay advertised, spacedrive-net.md §4.2).
   */
  advertise(rendezvousId: string): Promise<() => void | Promise<void>> | (() => void | Promise<void>);
  /** The addresses of devices that advertise R, as they are heard, until `signal` aborts. */
  lookup(rendezvousId: string, signal: AbortSignal): AsyncIterable<EndpointAddr>;
}
