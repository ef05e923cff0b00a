/**
 * The TLS 1.3 key schedule (RFC 8446 §7.1) and the QUIC key derivations on top of it
 * (RFC 9001 §5.1: "quic key", "quic iv", "quic hp"; §6.1: "quic ku").
 *
 * Only the (EC)DHE-only path exists here: no PSK, no 0-RTT, so the early secret is always
 * HKDF-Extract(0, 0).
 *
 * @module
 */
import type { CryptoProvider } from '../../crypto/provider.ts';
import type { CipherSuite } from './constants.ts';

const encoder = new TextEncoder();
/** "tls13 " + label, encoded once per label (a handshake expands ~30 labels per side). */
const labels = new Map<string, Uint8Array>();
const MAX_CACHED_LABELS = 64;

/**
 * Hash("") and the "derived" secret of the early secret: without a PSK the early secret is
 * HKDF-Extract(0, 0), so both are constants of the hash (RFC 8446 §7.1). Computed once per
 * provider and hash.
 */
const constants = new WeakMap<CryptoProvider, Map<string, { emptyHash: Uint8Array; derivedEarly: Uint8Array }>>();

function suiteConstants(provider: CryptoProvider, suite: CipherSuite): { emptyHash: Uint8Array; derivedEarly: Uint8Array } {
  let byHash = constants.get(provider);
  if (byHash === undefined) constants.set(provider, (byHash = new Map()));
  let c = byHash.get(suite.hash);
  if (c === undefined) {
    const zeros = new Uint8Array(suite.hashLength);
    const emptyHash = provider.hash(suite.hash, new Uint8Array(0));
    const early = provider.hkdfExtract(suite.hash, zeros, zeros);
    c = { emptyHash, derivedEarly: deriveSecret(provider, suite, early, 'derived', emptyHash) };
    byHash.set(suite.hash, c);
  }
  return c;
}

/**
 * HKDF-Expand-Label (RFC 8446 §7.1):
 * `HkdfLabel = uint16 length ‖ opaque label<7..255> = "tls13 " + Label ‖ opaque context<0..255>`.
 */
export function hkdfExpandLabel(provider: CryptoProvider, suite: CipherSuite, secret: Uint8Array, label: string, context: Uint8Array, length: number): Uint8Array {
  let fullLabel = labels.get(label);
  if (fullLabel === undefined) {
    fullLabel = encoder.encode(`tls13 ${label}`);
    if (labels.size < MAX_CACHED_LABELS) labels.set(label, fullLabel);
  }
  const info = new Uint8Array(2 + 1 + fullLabel.length + 1 + context.length);
  info[0] = length >> 8;
  info[1] = length & 0xff;
  info[2] = fullLabel.length;
  info.set(fullLabel, 3);
  info[3 + fullLabel.length] = context.length;
  info.set(context, 4 + fullLabel.length);
  return provider.hkdfExpand(suite.hash, secret, info, length);
}

/** Derive-Secret(Secret, Label, Messages) with the transcript hash already computed. */
export function deriveSecret(provider: CryptoProvider, suite: CipherSuite, secret: Uint8Array, label: string, transcriptHash: Uint8Array): Uint8Array {
  return hkdfExpandLabel(provider, suite, secret, label, transcriptHash, suite.hashLength);
}

/** The handshake traffic secrets and what the next stage needs. */
export interface HandshakeSecrets {
  handshakeSecret: Uint8Array;
  clientHandshakeTrafficSecret: Uint8Array;
  serverHandshakeTrafficSecret: Uint8Array;
}

/** Early secret → handshake secret → handshake traffic secrets (RFC 8446 §7.1). */
export function deriveHandshakeSecrets(provider: CryptoProvider, suite: CipherSuite, sharedSecret: Uint8Array, helloHash: Uint8Array): HandshakeSecrets {
  const handshakeSecret = provider.hkdfExtract(suite.hash, suiteConstants(provider, suite).derivedEarly, sharedSecret);
  return {
    handshakeSecret,
    clientHandshakeTrafficSecret: deriveSecret(provider, suite, handshakeSecret, 'c hs traffic', helloHash),
    serverHandshakeTrafficSecret: deriveSecret(provider, suite, handshakeSecret, 's hs traffic', helloHash),
  };
}

/** The application traffic secrets (and exporter master secret). */
export interface ApplicationSecrets {
  masterSecret: Uint8Array;
  clientApplicationTrafficSecret: Uint8Array;
  serverApplicationTrafficSecret: Uint8Array;
  exporterMasterSecret: Uint8Array;
}

/** Handshake secret → master secret → application traffic secrets, over CH..server Finished. */
export function deriveApplicationSecrets(provider: CryptoProvider, suite: CipherSuite, handshakeSecret: Uint8Array, serverFinishedHash: Uint8Array): ApplicationSecrets {
  const zeros = new Uint8Array(suite.hashLength);
  const derived = deriveSecret(provider, suite, handshakeSecret, 'derived', suiteConstants(provider, suite).emptyHash);
  const masterSecret = provider.hkdfExtract(suite.hash, derived, zeros);
  return {
    masterSecret,
    clientApplicationTrafficSecret: deriveSecret(provider, suite, masterSecret, 'c ap traffic', serverFinishedHash),
    serverApplicationTrafficSecret: deriveSecret(provider, suite, masterSecret, 's ap traffic', serverFinishedHash),
    exporterMasterSecret: deriveSecret(provider, suite, masterSecret, 'exp master', serverFinishedHash),
  };
}

/** Finished verify_data (RFC 8446 §4.4.4): HMAC(finished_key, transcript hash). */
export function finishedVerifyData(provider: CryptoProvider, suite: CipherSuite, baseKey: Uint8Array, transcriptHash: Uint8Array): Uint8Array {
  const finishedKey = hkdfExpandLabel(provider, suite, baseKey, 'finished', new Uint8Array(0), suite.hashLength);
  return provider.hmac(suite.hash, finishedKey, transcriptHash);
}

/**
 * TLS-Exporter (RFC 8446 §7.5):
 * `HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter", Hash(context_value), key_length)`,
 * where Secret is the exporter master secret. TLS 1.3 makes no difference between an absent
 * and an empty context, so `context` is always hashed (RFC 8446 §7.5).
 */
export function tlsExporter(provider: CryptoProvider, suite: CipherSuite, exporterMasterSecret: Uint8Array, label: string, context: Uint8Array, length: number): Uint8Array {
  const empty = new Uint8Array(0);
  const derived = deriveSecret(provider, suite, exporterMasterSecret, label, provider.hash(suite.hash, empty));
  return hkdfExpandLabel(provider, suite, derived, 'exporter', provider.hash(suite.hash, context), length);
}

/** The next application traffic secret after a QUIC key update (RFC 9001 §6.1, label "quic ku"). */
export function nextQuicTrafficSecret(provider: CryptoProvider, suite: CipherSuite, secret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(provider, suite, secret, 'quic ku', new Uint8Array(0), suite.hashLength);
}

/** QUIC packet-protection key material from a traffic secret (RFC 9001 §5.1). */
export interface QuicKeyMaterial {
  key: Uint8Array;
  iv: Uint8Array;
  hp: Uint8Array;
}

export function quicKeyMaterial(provider: CryptoProvider, suite: CipherSuite, secret: Uint8Array): QuicKeyMaterial {
  const empty = new Uint8Array(0);
  return {
    key: hkdfExpandLabel(provider, suite, secret, 'quic key', empty, suite.keyLength),
    iv: hkdfExpandLabel(provider, suite, secret, 'quic iv', empty, 12),
    hp: hkdfExpandLabel(provider, suite, secret, 'quic hp', empty, suite.keyLength),
  };
}
