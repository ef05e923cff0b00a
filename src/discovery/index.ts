/**
 * Discovery: finding endpoints by id — pkarr at relays, mDNS on the LAN, DNS — and the LAN
 * discovery module of the device service.
 *
 * @module
 */
export { PkarrLookup, resolveWith, type AddressLookup, type PkarrLookupOptions } from './lookup.ts';
export { DnsLookup, type DnsLookupOptions } from './dns-lookup.ts';
export { MdnsDiscovery, mdnsInstance, type MdnsEvents, type MdnsOptions, type MdnsPeer } from './mdns.ts';
export { attachMdns } from './attach.ts';
export { LanDiscovery, type LanDiscoveryOptions } from './module.ts';
export { PkarrError, publishPacket, resolvePacket, pkarrUrlOfRelay, type PkarrClientOptions } from './pkarr-client.ts';
export { signPacket, verifyPacket, encodeInfoDns, packetInfo, z32, type EndpointInfo, type SignedPacket } from './pkarr.ts';
export { decodeDnsMessage, encodeDnsMessage, type DnsMessage, type DnsQuestion, type DnsRecord, type RecordData } from './dns.ts';
