/**
 * X.509 credentials for the public `Endpoint`: PEM or DER certificates and keys turned into
 * the sans-IO core's {@link QuicCredentials}, and the peer checks an application asks for
 * (trust anchors, pinned keys, its own callback). Raw public keys (iroh's profile) stay the
 * default; this mode makes the endpoint a general QUIC v1 peer for stacks that speak X.509.
 *
 * @module
 */
import { X509Certificate, createPrivateKey, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import type { PeerCertificateInfo, QuicCredentials, X509PrivateKey } from '../transport/quic/endpoint.ts';
import { SdnetError } from '../util/errors.ts';
import { concatBytes } from '../util/bytes.ts';
import { SecretKey } from '../identity/index.ts';
import { encodeEd25519SpkiBytes } from '../transport/quic/tls/raw-public-key.ts';

/** PEM text (one or more blocks) or DER bytes, or a list of them. */
export type PemOrDer = string | Uint8Array;

/** What {@link X509Options.verifyPeer} sees of the peer. */
export interface PeerCertificates {
  /** Our role in the connection. */
  readonly side: 'client' | 'server';
  /** The peer's certificates, DER, leaf first. */
  readonly certificates: readonly Uint8Array[];
  /** Client: the server name dialled; server: the name the client sent (SNI), if any. */
  readonly serverName: string | undefined;
}

export interface X509Options {
  /** Our certificate chain, leaf first: PEM text (blocks may follow each other) or DER, or a list of them. */
  certificateChain: PemOrDer | readonly PemOrDer[];
  /** The leaf's private key, Ed25519 or ECDSA P-256: PEM (PKCS#8 or SEC1) or PKCS#8 DER. */
  privateKey: PemOrDer;
  /**
   * Trust anchors: the peer's chain must lead to one of these CA certificates, with every
   * signature, issuer name and validity period checked; a client also checks the leaf against
   * the server name it dials. (Key usage, policies and name constraints are not checked.)
   */
  ca?: PemOrDer | readonly PemOrDer[];
  /** Accept only peers whose leaf key is one of these: SPKI DER, or PEM public keys or certificates. */
  pinnedPeerKeys?: readonly PemOrDer[];
  /** The application's own decision, after `ca` and `pinnedPeerKeys` (when given) accepted. */
  verifyPeer?: (peer: PeerCertificates) => boolean;
  /** Server: ask every client for a certificate and require one (default false). */
  requireClientCertificate?: boolean;
}

const invalid = (message: string, cause?: unknown) => new SdnetError('ERR_INVALID_ARGUMENT', message, cause === undefined ? undefined : { cause });

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function list(input: PemOrDer | readonly PemOrDer[]): PemOrDer[] {
  return typeof input === 'string' || input instanceof Uint8Array ? [input] : [...input];
}

/** Every certificate in the inputs, parsed, in order. */
function certificates(input: PemOrDer | readonly PemOrDer[], what: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const item of list(input)) {
    const blocks = typeof item === 'string' ? [...item.matchAll(PEM_BLOCK)].filter((m) => m[1] === 'CERTIFICATE').map((m) => m[0]) : [item];
    if (blocks.length === 0) throw invalid(`${what}: no PEM CERTIFICATE block found`);
    for (const b of blocks) {
      try {
        out.push(new X509Certificate(typeof b === 'string' ? b : Buffer.from(b)));
      } catch (err) {
        throw invalid(`${what}: not an X.509 certificate (${(err as Error).message})`, err);
      }
    }
  }
  if (out.length === 0) throw invalid(`${what}: no certificate given`);
  return out;
}

const spkiOf = (key: KeyObject): Uint8Array => new Uint8Array(key.export({ type: 'spki', format: 'der' }));

function privateKey(input: PemOrDer): { key: X509PrivateKey; spki: Uint8Array } {
  let key: KeyObject;
  try {
    key = typeof input === 'string' ? createPrivateKey(input) : createPrivateKey({ key: Buffer.from(input), format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw invalid(`x509.privateKey: not a private key (${(err as Error).message})`, err);
  }
  const jwk = key.export({ format: 'jwk' });
  const d = new Uint8Array(Buffer.from(jwk.d ?? '', 'base64url'));
  const spki = spkiOf(createPublicKey(key));
  if (key.asymmetricKeyType === 'ed25519') return { key: { algorithm: 'ed25519', seed: d }, spki };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { key: { algorithm: 'ecdsa-p256', scalar: d }, spki };
  throw invalid(`x509.privateKey: ${key.asymmetricKeyType} keys are not supported (Ed25519 or ECDSA P-256)`);
}

function pinnedSpki(input: PemOrDer): Uint8Array {
  try {
    if (typeof input === 'string') {
      if (input.includes('-----BEGIN CERTIFICATE-----')) return spkiOf(new X509Certificate(input).publicKey);
      return spkiOf(createPublicKey(input));
    }
    return spkiOf(createPublicKey({ key: Buffer.from(input), format: 'der', type: 'spki' }));
  } catch (err) {
    throw invalid(`x509.pinnedPeerKeys: not a public key or certificate (${(err as Error).message})`, err);
  }
}

const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);

/** Most certificates a peer's chain may have to be checked against trust anchors. */
const MAX_CHAIN = 8;

/** Does `chain` (leaf first) lead to one of `anchors`, every link signed and valid now? */
function chainTrusted(chain: readonly Uint8Array[], anchors: readonly X509Certificate[], side: 'client' | 'server', serverName: string | undefined): boolean {
  if (chain.length === 0 || chain.length > MAX_CHAIN) return false;
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(Buffer.from(der)));
  } catch {
    return false;
  }
  const now = Date.now();
  const current = (c: X509Certificate) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
  const signs = (issuer: X509Certificate, cert: X509Certificate) => issuer.ca && cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  const leaf = certs[0]!;
  // A client checks the name it dialled (RFC 6125 via node's checks); an IP literal against the IP SANs.
  if (side === 'client' && serverName !== undefined) {
    const ok = isIP(serverName) ? leaf.checkIP(serverName) !== undefined : leaf.checkHost(serverName) !== undefined;
    if (!ok) return false;
  }
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i]!;
    if (!current(cert)) return false;
    // The chain may end with the anchor itself, or with a certificate an anchor issued.
    if (anchors.some((a) => a.raw.equals(cert.raw))) return true;
    const anchor = anchors.find((a) => current(a) && signs(a, cert));
    if (anchor) return true;
    const next = certs[i + 1];
    if (next === undefined || !signs(next, cert)) return false;
  }
  return false;
}

/**
 * A check of a server's chain against trust anchors (signatures, issuers, validity, the name
 * dialled), for connections that verify a server without presenting a certificate (QUIC
 * address discovery against a relay).
 */
export function trustAnchorsVerifier(ca: PemOrDer | readonly PemOrDer[]): (peer: PeerCertificateInfo) => boolean {
  const anchors = certificates(ca, 'ca');
  return (peer) => chainTrusted(peer.chain, anchors, peer.side, peer.serverName);
}

function der(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = concatBytes(...parts);
  const n = body.length;
  const len = n < 0x80 ? Uint8Array.of(n) : n < 0x100 ? Uint8Array.of(0x81, n) : Uint8Array.of(0x82, n >> 8, n & 0xff);
  return concatBytes(Uint8Array.of(tag), len, body);
}

const pemBlock = (label: string, bytes: Uint8Array) => `-----BEGIN ${label}-----\n${Buffer.from(bytes).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;

/**
 * A self-signed Ed25519 certificate (RFC 5280, RFC 8410) for `commonName`, valid from 2025 to
 * 2099: what a relay without a TLS certificate presents on its QUIC address discovery port.
 * Its clients cannot verify it, and accept it only for relays they reach over plain HTTP.
 */
export function selfSignedEd25519(commonName: string, key: SecretKey = SecretKey.generate()): { der: Uint8Array; certificatePem: string; privateKeyPem: string } {
  const seq = (...p: Uint8Array[]) => der(0x30, ...p);
  const ascii = (t: string) => new TextEncoder().encode(t);
  const alg = seq(der(0x06, Uint8Array.of(0x2b, 0x65, 0x70))); // id-Ed25519 (RFC 8410 §3)
  const name = seq(der(0x31, seq(der(0x06, Uint8Array.of(0x55, 0x04, 0x03)), der(0x0c, ascii(commonName)))));
  const tbs = seq(
    der(0xa0, der(0x02, Uint8Array.of(2))), // v3
    der(0x02, Uint8Array.of(0x01, ...key.public().bytes.subarray(0, 7))), // a positive serial
    alg,
    name,
    seq(der(0x17, ascii('250101000000Z')), der(0x18, ascii('20991231235959Z'))),
    name,
    encodeEd25519SpkiBytes(key.public().bytes),
  );
  const cert = seq(tbs, alg, der(0x03, Uint8Array.of(0), key.sign(tbs).bytes));
  // PKCS#8 of an Ed25519 seed (RFC 8410 §7).
  const pkcs8 = concatBytes(Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20), key.toBytes());
  return { der: cert, certificatePem: pemBlock('CERTIFICATE', cert), privateKeyPem: pemBlock('PRIVATE KEY', pkcs8) };
}

/** The core's credentials for {@link X509Options}, with every input checked. */
export function x509Credentials(options: X509Options): QuicCredentials {
  const chain = certificates(options.certificateChain, 'x509.certificateChain');
  const { key, spki } = privateKey(options.privateKey);
  if (!equal(spkiOf(chain[0]!.publicKey), spki)) throw invalid('x509.privateKey does not match the leaf certificate (the first of certificateChain)');
  const anchors = options.ca === undefined ? undefined : certificates(options.ca, 'x509.ca');
  const pins = options.pinnedPeerKeys?.map(pinnedSpki);
  const callback = options.verifyPeer;
  if (anchors === undefined && pins === undefined && callback === undefined) {
    throw invalid('An X.509 endpoint must say how peers are verified: x509.ca, x509.pinnedPeerKeys or x509.verifyPeer');
  }
  const verifyPeer = (peer: PeerCertificateInfo): boolean => {
    if (pins !== undefined && !pins.some((p) => equal(p, peer.spki))) return false;
    if (anchors !== undefined && !chainTrusted(peer.chain, anchors, peer.side, peer.serverName)) return false;
    return callback === undefined || callback({ side: peer.side, certificates: peer.chain.map((c) => c.slice()), serverName: peer.serverName }) === true;
  };
  return {
    type: 'x509',
    chain: chain.map((c) => new Uint8Array(c.raw)),
    privateKey: key,
    verifyPeer,
    ...(options.requireClientCertificate ? { requireClientCertificate: true } : {}),
  };
}
