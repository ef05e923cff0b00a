/**
 * TLS 1.3 code points used by sdnet (RFC 8446 §4, §B.3; RFC 7250 §3; RFC 9001 §8.2).
 *
 * @module
 */
import type { AeadAlgorithm, HashAlgorithm, HeaderProtectionAlgorithm } from '../../crypto/provider.ts';

/** Handshake message types (RFC 8446 §4). */
export const HandshakeType = {
  client_hello: 1,
  server_hello: 2,
  new_session_ticket: 4,
  end_of_early_data: 5,
  encrypted_extensions: 8,
  certificate: 11,
  certificate_request: 13,
  certificate_verify: 15,
  finished: 20,
  key_update: 24,
  message_hash: 254,
} as const;

/** Extension types (RFC 8446 §4.2, RFC 7250 §3, RFC 7301, RFC 9001 §8.2). */
export const ExtensionType = {
  server_name: 0,
  supported_groups: 10,
  signature_algorithms: 13,
  application_layer_protocol_negotiation: 16,
  client_certificate_type: 19,
  server_certificate_type: 20,
  pre_shared_key: 41,
  early_data: 42,
  supported_versions: 43,
  cookie: 44,
  psk_key_exchange_modes: 45,
  certificate_authorities: 47,
  signature_algorithms_cert: 50,
  key_share: 51,
  quic_transport_parameters: 0x39,
} as const;

export const TLS13_VERSION = 0x0304;
export const LEGACY_VERSION = 0x0303;

/** Named groups: we speak x25519 only (iroh-wire §2). */
export const NamedGroup = { x25519: 0x001d, secp256r1: 0x0017, secp384r1: 0x0018 } as const;

/** Signature schemes: Ed25519 (iroh-wire §2); ECDSA P-256 with SHA-256 for X.509 credentials only. */
export const SignatureScheme = { ed25519: 0x0807, ecdsa_secp256r1_sha256: 0x0403 } as const;

/** Certificate types (RFC 7250 §3 / IANA TLS Certificate Types). */
export const CertificateType = { x509: 0, raw_public_key: 2 } as const;

/** RFC 8446 §4.1.3: the ServerHello.random of a HelloRetryRequest, SHA-256("HelloRetryRequest"). */
export const HELLO_RETRY_REQUEST_RANDOM = Uint8Array.from([
  0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
  0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
]);

/** A TLS 1.3 cipher suite and what it implies for key derivation and packet protection. */
export interface CipherSuite {
  readonly id: number;
  readonly name: string;
  readonly hash: HashAlgorithm;
  readonly hashLength: number;
  readonly aead: AeadAlgorithm;
  readonly keyLength: number;
  readonly headerProtection: HeaderProtectionAlgorithm;
}

export const TLS_AES_128_GCM_SHA256: CipherSuite = {
  id: 0x1301,
  name: 'TLS_AES_128_GCM_SHA256',
  hash: 'sha256',
  hashLength: 32,
  aead: 'aes-128-gcm',
  keyLength: 16,
  headerProtection: 'aes-128',
};
export const TLS_AES_256_GCM_SHA384: CipherSuite = {
  id: 0x1302,
  name: 'TLS_AES_256_GCM_SHA384',
  hash: 'sha384',
  hashLength: 48,
  aead: 'aes-256-gcm',
  keyLength: 32,
  headerProtection: 'aes-256',
};
export const TLS_CHACHA20_POLY1305_SHA256: CipherSuite = {
  id: 0x1303,
  name: 'TLS_CHACHA20_POLY1305_SHA256',
  hash: 'sha256',
  hashLength: 32,
  aead: 'chacha20-poly1305',
  keyLength: 32,
  headerProtection: 'chacha20',
};

/** Every suite we implement, in our default preference order. */
export const CIPHER_SUITES: readonly CipherSuite[] = [TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256];

export function cipherSuiteById(id: number): CipherSuite | undefined {
  return CIPHER_SUITES.find((s) => s.id === id);
}
