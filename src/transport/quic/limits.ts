/**
 * Limits of the QUIC/TLS core: every length, count or size a peer controls is checked
 * against one of these before anything is allocated.
 *
 * @module
 */

/**
 * Largest TLS handshake message accepted (body bytes). An iroh ClientHello is ~300 bytes and a
 * raw-public-key Certificate 60; WebPKI chains (QAD relays) reach ~5 KiB. rustls allows 64 KiB.
 */
export const MAX_TLS_HANDSHAKE_MESSAGE_BYTES = 32 * 1024;

/** Most certificate entries accepted in a Certificate message (raw keys use exactly one). */
export const MAX_TLS_CERTIFICATE_ENTRIES = 10;
