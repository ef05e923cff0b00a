/**
 * Bounds on everything a DNS message, a pkarr record or an mDNS packet from outside can make
 * discovery allocate or do. Every peer-controlled length and count is checked against these
 * before anything is allocated for it.
 *
 * @module
 */

/** Largest DNS message decoded at all (an mDNS packet fits one Ethernet frame; RFC 6762 §17 allows 9000). */
export const MAX_DNS_MESSAGE_BYTES = 9000;
/** Most records (all four sections together) decoded from one message. */
export const MAX_DNS_RECORDS = 64;
/** Most compression pointers followed while reading one name (RFC 1035 §4.1.4 has no bound; loops must end). */
export const MAX_DNS_POINTER_JUMPS = 16;
/** Longest name, in wire octets (RFC 1035 §2.3.4). */
export const MAX_DNS_NAME_BYTES = 255;
/** Longest label (RFC 1035 §2.3.4). */
export const MAX_DNS_LABEL_BYTES = 63;
/** Most character-strings in one TXT record. */
export const MAX_TXT_STRINGS = 32;

/** Largest DNS part of a pkarr signed packet (pkarr: 1000 bytes). */
export const MAX_PKARR_DNS_BYTES = 1000;
/** Largest pkarr PUT body: 64-byte signature + 8-byte timestamp + DNS message (pkarr relays: 1072). */
export const MAX_PKARR_BODY_BYTES = 64 + 8 + MAX_PKARR_DNS_BYTES;
/** How long a published pkarr record is kept and served by the relay's store (ms). */
export const PKARR_RECORD_TTL_MS = 2 * 60 * 60 * 1000;
/** Default number of pkarr records the relay keeps. */
export const PKARR_STORE_MAX_RECORDS = 10_000;
/** A timestamp this far in the future is refused (µs; clocks differ, not by an hour). */
export const PKARR_MAX_FUTURE_US = 60n * 60n * 1_000_000n;
/** Republish the record this often even without a change (iroh: every 5 minutes). */
export const PKARR_REPUBLISH_MS = 5 * 60 * 1000;
/** TTL written into published `_iroh` TXT records (s; iroh writes 30). */
export const PKARR_TXT_TTL_S = 30;
/** Longest a single resolve waits for all lookups together (ms). */
export const RESOLVE_DEADLINE_MS = 5000;
/** Largest HTTP response body read from a pkarr relay. */
export const MAX_PKARR_RESPONSE_BYTES = MAX_PKARR_BODY_BYTES;

/** Longest `user-data` value (iroh: 245 bytes). */
export const MAX_USER_DATA_BYTES = 245;
/** Most peers remembered from mDNS at once (a LAN flood cannot grow this). */
export const MAX_MDNS_PEERS = 256;
/** Most mDNS packets handled per second per socket before the rest are dropped. */
export const MDNS_MAX_PACKETS_PER_S = 200;
/** A peer heard on mDNS is forgotten after this long without being heard again (ms). */
export const MDNS_PEER_EXPIRY_MS = 30_000;
/** Most addresses kept for one mDNS peer. */
export const MAX_MDNS_ADDRS_PER_PEER = 16;
