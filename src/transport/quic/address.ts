/**
 * What kind of IP address a peer gave us (raw 4- or 16-byte form, as
 * `sdnet_direct_addresses` carries it), so that the core never probes an address no single
 * honest host has (unspecified, multicast, broadcast, reserved) and can tell loopback apart.
 *
 * @module
 */

export type IpScope = 'unspecified' | 'loopback' | 'multicast' | 'broadcast' | 'reserved' | 'unicast';

/** The scope of an IPv4 (4 bytes) or IPv6 (16 bytes) address; IPv4-mapped IPv6 as its IPv4. */
export function ipScope(ip: Uint8Array): IpScope {
  if (ip.length === 16) {
    let mapped = true;
    for (let i = 0; i < 10; i++) if (ip[i] !== 0) mapped = false;
    if (mapped && ip[10] === 0xff && ip[11] === 0xff) return ipScope(ip.subarray(12));
    if (ip[0] === 0xff) return 'multicast'; // ff00::/8
    let zero = true;
    for (let i = 0; i < 15; i++) if (ip[i] !== 0) zero = false;
    if (zero && ip[15] === 0) return 'unspecified';
    if (zero && ip[15] === 1) return 'loopback';
    return 'unicast';
  }
  if (ip.length !== 4) return 'reserved';
  const a = ip[0]!;
  if (a === 0) return 'unspecified'; // 0.0.0.0/8: "this network"
  if (a === 127) return 'loopback';
  if (a >= 224 && a <= 239) return 'multicast';
  if (a === 255 && ip[1] === 255 && ip[2] === 255 && ip[3] === 255) return 'broadcast';
  if (a >= 240) return 'reserved';
  return 'unicast';
}

/** An address a peer may ask us to send probes to: one host (unicast or loopback) and a port. */
export function isProbeable(address: { readonly ip: Uint8Array; readonly port: number }): boolean {
  const scope = ipScope(address.ip);
  return (scope === 'unicast' || scope === 'loopback') && address.port !== 0;
}
