/**
 * Bounds on everything an address, ticket or key file from outside can make us allocate.
 *
 * iroh itself has no explicit limits here; these are far above anything a real endpoint
 * produces (a handful of relay URLs and a few dozen direct addresses) and far below what
 * could hurt.
 *
 * @module
 */

/** Longest ticket string accepted (characters). A ticket with 64 IPv6 addresses is ~2 KiB. */
export const MAX_TICKET_CHARS = 64 * 1024;
/** Most transport addresses (relay + direct + custom) in one EndpointAddr. */
export const MAX_ENDPOINT_ADDRS = 1024;
/** Longest relay URL, in UTF-8 bytes (browsers cap URLs near 2 KiB; this is generous). */
export const MAX_RELAY_URL_BYTES = 4096;
/** Largest custom-address payload (iroh's inline form holds 30; Tor keys are 32). */
export const MAX_CUSTOM_ADDR_BYTES = 1024;
/** Largest key file read from disk. A valid file is 65 bytes. */
export const MAX_KEY_FILE_BYTES = 4096;
