/**
 * The TLS 1.3 session interface the QUIC core drives (shaped like quinn's `crypto::Session`),
 * and the machinery the client and server share: per-level reassembly of handshake bytes,
 * the transcript hash, queues of outgoing handshake bytes and of traffic secrets, and the
 * conversion of malformed input into alerts.
 *
 * Sans-IO: no sockets, no clock; randomness and crypto come from the injected provider.
 *
 * @module
 */
import type { CryptoProvider, Ed25519Signer, Hasher } from '../../crypto/provider.ts';
import { CryptoError, DecodeError } from '../../../util/errors.ts';
import { MAX_TLS_CERTIFICATE_ENTRIES, MAX_TLS_HANDSHAKE_MESSAGE_BYTES } from '../limits.ts';
import { TlsAlertError, tlsAlert } from './alerts.ts';
import { CIPHER_SUITES, CertificateType, HandshakeType, SignatureScheme, type CipherSuite, cipherSuiteById } from './constants.ts';
import { HandshakeReassembler, decodeCertificate, encodeCertificate, encodeCertificateVerify, type Certificate, type HandshakeMessage } from './messages.ts';
import { decodeEd25519SpkiBytes, encodeEd25519SpkiBytes } from './raw-public-key.ts';
import { finishedVerifyData, tlsExporter } from './key-schedule.ts';
import { equalBytesConstantTime } from '../../../util/bytes.ts';
import { keyFromSpki, spkiFromCertificate } from './x509.ts';

/** QUIC encryption levels that carry handshake bytes (no 0-RTT). */
export type EncryptionLevel = 'initial' | 'handshake' | 'application';

/** Traffic secrets for one level, as this side uses them. */
export interface TrafficSecrets {
  readonly level: 'handshake' | 'application';
  readonly suite: CipherSuite;
  /** The secret this side encrypts with. */
  readonly local: Uint8Array;
  /** The secret this side decrypts with. */
  readonly remote: Uint8Array;
}

/**
 * Our certificate: an RFC 7250 raw public key (iroh), or an X.509 chain (leaf first, DER)
 * whose leaf key is `secretKey`: an Ed25519 seed, or a P-256 private scalar when
 * `keyAlgorithm` is 'ecdsa-p256'.
 */
export type LocalCertificate =
  | { readonly type: 'raw-public-key'; readonly secretKey: Uint8Array }
  /** X.509; a client's `chain` may be empty: it then answers a CertificateRequest with no certificate. */
  | { readonly type: 'x509'; readonly secretKey: Uint8Array; readonly chain: readonly Uint8Array[]; readonly keyAlgorithm?: 'ed25519' | 'ecdsa-p256' };

/** Checks the peer's CertificateVerify signature with the scheme its key allows. */
export interface PeerSignatureVerifier {
  readonly scheme: number;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

export interface TlsCommonConfig {
  readonly provider: CryptoProvider;
  /** Our identity: an Ed25519 seed and how it is presented. */
  readonly certificate: LocalCertificate;
  /** ALPN protocols, in preference order. ALPN is mandatory (RFC 9001 §8.1). */
  readonly alpnProtocols: readonly Uint8Array[];
  /** Cipher suite ids in preference order (default 0x1301, 0x1302, 0x1303). */
  readonly cipherSuites?: readonly number[];
  /**
   * Our encoded QUIC transport parameters. When set, the session runs in QUIC mode
   * (extension 0x39 sent and required, RFC 9001 §8.2); when not, it is plain TLS 1.3 (tests
   * against node:tls).
   */
  readonly transportParameters?: Uint8Array;
  /**
   * Receives every traffic secret as an NSS key-log line (`LABEL <client random> <secret>`,
   * hex), for SSLKEYLOGFILE so captures can be decrypted. Never set it in production.
   */
  readonly keyLog?: (line: string) => void;
  /** A ready signer for `certificate.secretKey` (saves re-importing the key per connection). */
  readonly signer?: Ed25519Signer;
}

/** What a session exposes once the handshake has got far enough. */
export interface CryptoSession {
  readonly side: 'client' | 'server';
  /** Feed handshake bytes received at `level`. @throws {TlsAlertError} */
  handleHandshakeData(level: EncryptionLevel, data: Uint8Array): void;
  /** Next handshake bytes to send, with their level. */
  pollHandshakeData(): { level: EncryptionLevel; data: Uint8Array } | undefined;
  /** Next traffic secrets to install (handshake first, then application). */
  pollSecrets(): TrafficSecrets | undefined;
  /** True until the peer's Finished has been verified. */
  readonly isHandshaking: boolean;
  /** The negotiated ALPN protocol. */
  readonly alpn: Uint8Array | undefined;
  /** The peer's encoded transport parameters (QUIC mode). */
  readonly peerTransportParameters: Uint8Array | undefined;
  /** The peer's 32-byte Ed25519 public key, once its certificate has been read (undefined for other key types). */
  readonly peerPublicKey: Uint8Array | undefined;
  /** The peer's X.509 chain (DER, leaf first) in X.509 mode; empty with raw public keys. */
  readonly peerCertificates: readonly Uint8Array[];
  /** The negotiated cipher suite. */
  readonly cipherSuite: CipherSuite | undefined;
  /** The exporter master secret (RFC 8446 §7.5), once derived. */
  readonly exporterMasterSecret: Uint8Array | undefined;
  /** Keying material exported from this session (RFC 8446 §7.5); undefined before the handshake completes. */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array | undefined;
}

const CV_PAD = new Uint8Array(64).fill(0x20);
const CV_CONTEXT = {
  server: new TextEncoder().encode('TLS 1.3, server CertificateVerify'),
  client: new TextEncoder().encode('TLS 1.3, client CertificateVerify'),
};

/** RFC 8446 §4.4.3: 64 × 0x20 ‖ context string ‖ 0x00 ‖ transcript hash. */
export function certificateVerifyContent(side: 'client' | 'server', transcriptHash: Uint8Array): Uint8Array {
  const ctx = CV_CONTEXT[side];
  const out = new Uint8Array(64 + ctx.length + 1 + transcriptHash.length);
  out.set(CV_PAD, 0);
  out.set(ctx, 64);
  out[64 + ctx.length] = 0;
  out.set(transcriptHash, 65 + ctx.length);
  return out;
}

/** The parts of a TLS 1.3 session common to client and server. */
export abstract class TlsSessionBase implements CryptoSession {
  abstract readonly side: 'client' | 'server';
  protected readonly config: TlsCommonConfig;
  protected readonly provider: CryptoProvider;
  protected readonly signer: { readonly publicKey: Uint8Array; sign(message: Uint8Array): Uint8Array };
  /** The scheme of our CertificateVerify (RFC 8446 §4.2.3), from our key. */
  protected readonly signatureScheme: number;
  protected readonly suites: readonly CipherSuite[];

  readonly #reassemblers = new Map<EncryptionLevel, HandshakeReassembler>();
  readonly #output: { level: EncryptionLevel; data: Uint8Array }[] = [];
  readonly #secrets: TrafficSecrets[] = [];
  #transcriptPending: Uint8Array[] = [];
  #transcript: Hasher | undefined;
  #failure: TlsAlertError | undefined;

  protected suite: CipherSuite | undefined;
  protected handshakeDone = false;
  protected negotiatedAlpn: Uint8Array | undefined;
  protected peerParams: Uint8Array | undefined;
  protected peerKey: Uint8Array | undefined;
  protected exporterSecret: Uint8Array | undefined;
  /** The peer's X.509 chain (test mode). */
  peerCertificates: readonly Uint8Array[] = [];

  constructor(config: TlsCommonConfig) {
    if (config.alpnProtocols.length === 0) throw new TypeError('At least one ALPN protocol is required');
    for (const p of config.alpnProtocols) if (p.length === 0 || p.length > 255) throw new RangeError('ALPN protocols must be 1..255 bytes');
    this.config = config;
    this.provider = config.provider;
    const cert = config.certificate;
    if (cert.type === 'x509' && cert.keyAlgorithm === 'ecdsa-p256') {
      this.signer = config.provider.ecdsaP256Signer(cert.secretKey);
      this.signatureScheme = SignatureScheme.ecdsa_secp256r1_sha256;
    } else {
      this.signer = config.signer ?? config.provider.ed25519Signer(cert.secretKey);
      this.signatureScheme = SignatureScheme.ed25519;
    }
    const ids = config.cipherSuites ?? CIPHER_SUITES.map((s) => s.id);
    this.suites = ids.map((id) => {
      const s = cipherSuiteById(id);
      if (s === undefined) throw new RangeError(`Unsupported cipher suite 0x${id.toString(16)}`);
      return s;
    });
    if (this.suites.length === 0) throw new TypeError('At least one cipher suite is required');
  }

  get isHandshaking(): boolean {
    return !this.handshakeDone;
  }
  get alpn(): Uint8Array | undefined {
    return this.negotiatedAlpn;
  }
  get peerTransportParameters(): Uint8Array | undefined {
    return this.peerParams;
  }
  get peerPublicKey(): Uint8Array | undefined {
    return this.peerKey;
  }
  get cipherSuite(): CipherSuite | undefined {
    return this.suite;
  }
  get exporterMasterSecret(): Uint8Array | undefined {
    return this.exporterSecret;
  }
  /**
   * RFC 8446 §7.5 exporter over this session's exporter master secret. Only once the
   * handshake is complete (the peer's Finished verified), so the value is bound to an
   * authenticated peer. The label is the bare label ("EXPORTER-…"); "tls13 " is prefixed by
   * HKDF-Expand-Label.
   *
   * @throws {RangeError} for a label longer than 249 bytes or a length the suite's HKDF
   *   cannot produce (1..255 × hash length)
   */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array | undefined {
    const labelBytes = new TextEncoder().encode(label).length;
    // RFC 8446 §7.1: HkdfLabel.label is opaque<7..255> and carries "tls13 " + label.
    if (labelBytes > 249) throw new RangeError(`Exporter label is ${labelBytes} bytes; at most 249`);
    if (!this.handshakeDone || this.exporterSecret === undefined || this.suite === undefined) return undefined;
    // RFC 5869 §2.3: L <= 255 * HashLen.
    if (!Number.isSafeInteger(length) || length < 1 || length > 255 * this.suite.hashLength) {
      throw new RangeError(`Exporter length must be 1..${255 * this.suite.hashLength} bytes, got ${length}`);
    }
    return tlsExporter(this.provider, this.suite, this.exporterSecret, label, context, length);
  }
  protected get quicMode(): boolean {
    return this.config.transportParameters !== undefined;
  }
  protected get rawKeys(): boolean {
    return this.config.certificate.type === 'raw-public-key';
  }
  /**
   * The signature schemes we accept from the peer (signature_algorithms, RFC 8446 §4.2.3):
   * Ed25519 only with raw public keys (iroh's profile), Ed25519 and ECDSA P-256 with X.509.
   */
  protected get offeredSchemes(): number[] {
    return this.rawKeys ? [SignatureScheme.ed25519] : [SignatureScheme.ed25519, SignatureScheme.ecdsa_secp256r1_sha256];
  }

  pollHandshakeData(): { level: EncryptionLevel; data: Uint8Array } | undefined {
    return this.#output.shift();
  }

  pollSecrets(): TrafficSecrets | undefined {
    return this.#secrets.shift();
  }

  handleHandshakeData(level: EncryptionLevel, data: Uint8Array): void {
    if (this.#failure) throw this.#failure;
    try {
      let r = this.#reassemblers.get(level);
      if (r === undefined) {
        r = new HandshakeReassembler(MAX_TLS_HANDSHAKE_MESSAGE_BYTES);
        this.#reassemblers.set(level, r);
      }
      r.push(data);
      for (let msg = r.next(); msg !== undefined; msg = r.next()) {
        this.handleMessage(level, msg);
        if (this.#failure) throw this.#failure;
      }
    } catch (err) {
      this.#failure = this.#toAlert(err);
      throw this.#failure;
    }
  }

  /** Map decode and crypto failures to alerts; anything else is a bug and propagates. */
  #toAlert(err: unknown): TlsAlertError {
    if (err instanceof TlsAlertError) return err;
    if (err instanceof DecodeError) {
      const tooLarge = /exceed the limit/.test(err.message);
      return tlsAlert(tooLarge ? 'unexpected_message' : 'decode_error', tooLarge ? 'ERR_TLS_MESSAGE_TOO_LARGE' : 'ERR_TLS_DECODE', err.message);
    }
    if (err instanceof CryptoError) return tlsAlert('illegal_parameter', 'ERR_TLS_BAD_KEY_SHARE', err.message);
    throw err;
  }

  /** Process one whole handshake message received at `level`. */
  protected abstract handleMessage(level: EncryptionLevel, msg: HandshakeMessage & { raw: Uint8Array }): void;

  protected send(level: EncryptionLevel, data: Uint8Array): void {
    this.#output.push({ level, data });
  }

  /** The ClientHello random (the key-log lines are keyed by it). */
  protected clientRandom: Uint8Array | undefined;

  protected installSecrets(s: TrafficSecrets): void {
    this.#secrets.push(s);
    const log = this.config.keyLog;
    if (log && this.clientRandom) {
      const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
      const [c, sv] = this.side === 'client' ? [s.local, s.remote] : [s.remote, s.local];
      const base = s.level === 'handshake' ? ['CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET'] : ['CLIENT_TRAFFIC_SECRET_0', 'SERVER_TRAFFIC_SECRET_0'];
      log(`${base[0]} ${hex(this.clientRandom)} ${hex(c)}`);
      log(`${base[1]} ${hex(this.clientRandom)} ${hex(sv)}`);
    }
  }

  protected unexpected(level: EncryptionLevel, type: number): TlsAlertError {
    return tlsAlert('unexpected_message', 'ERR_TLS_UNEXPECTED_MESSAGE', `Unexpected handshake message type ${type} at ${level} level`);
  }

  // ---- transcript (RFC 8446 §4.4.1) ----

  /** Add a message to the transcript; before the suite is known, keep the bytes. */
  protected transcriptAdd(raw: Uint8Array): void {
    if (this.#transcript) this.#transcript.update(raw);
    else this.#transcriptPending.push(raw);
  }

  /** Fix the suite (and so the hash); the pending messages enter the hash. */
  protected selectSuite(suite: CipherSuite): void {
    this.suite = suite;
    if (this.#transcript) return;
    this.#transcript = this.provider.hasher(suite.hash);
    for (const p of this.#transcriptPending) this.#transcript.update(p);
    this.#transcriptPending = [];
  }

  /**
   * After a HelloRetryRequest the transcript restarts with message_hash(ClientHello1)
   * (RFC 8446 §4.4.1): `254 ‖ 00 00 Hash.length ‖ Hash(ClientHello1)`.
   */
  protected restartTranscriptForRetry(suite: CipherSuite, clientHello1: Uint8Array): void {
    this.suite = suite;
    const h = this.provider.hash(suite.hash, clientHello1);
    const messageHash = new Uint8Array(4 + h.length);
    messageHash[0] = HandshakeType.message_hash;
    messageHash[3] = h.length;
    messageHash.set(h, 4);
    this.#transcript = this.provider.hasher(suite.hash);
    this.#transcript.update(messageHash);
    this.#transcriptPending = [];
  }

  protected transcriptHash(): Uint8Array {
    if (!this.#transcript) throw new Error('transcript hash before the cipher suite is known');
    return this.#transcript.digest();
  }

  // ---- certificates ----

  /** Our Certificate message (RFC 8446 §4.4.2; raw key: one SPKI entry, RFC 7250 §3). */
  protected buildCertificate(context: Uint8Array): Uint8Array {
    const cert = this.config.certificate;
    const entries =
      cert.type === 'raw-public-key'
        ? [{ data: encodeEd25519SpkiBytes(this.signer.publicKey), extensions: [] }]
        : cert.chain.map((data) => ({ data, extensions: [] }));
    return encodeCertificate({ context, entries });
  }

  /** Our CertificateVerify: Ed25519 (or ECDSA P-256 with such an X.509 key) over the §4.4.3 content. */
  protected buildCertificateVerify(): Uint8Array {
    const content = certificateVerifyContent(this.side, this.transcriptHash());
    return encodeCertificateVerify({ scheme: this.signatureScheme, signature: this.signer.sign(content) });
  }

  /**
   * Read the peer's Certificate and return its public key: the 32-byte Ed25519 key, or (X.509
   * mode, ECDSA P-256 leaf) the leaf's SubjectPublicKeyInfo DER. Raw-key mode accepts exactly
   * one entry holding an Ed25519 SPKI; X.509 mode takes the leaf's SPKI.
   */
  protected readPeerCertificate(body: Uint8Array, expectedContext: Uint8Array): { key: Uint8Array | undefined; verifier: PeerSignatureVerifier | undefined; message: Certificate } {
    const message = decodeCertificate(body, MAX_TLS_CERTIFICATE_ENTRIES);
    if (message.context.length !== expectedContext.length || message.context.some((b, i) => b !== expectedContext[i])) {
      throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'Certificate request context does not match');
    }
    if (message.entries.length === 0) return { key: undefined, verifier: undefined, message };
    let spki: Uint8Array;
    if (this.rawKeys) {
      // iroh-wire §2: exactly one certificate entry, no intermediates.
      if (message.entries.length !== 1) {
        throw tlsAlert('unsupported_certificate', 'ERR_TLS_CERT_CHAIN', `Expected one raw public key, got ${message.entries.length} certificate entries`);
      }
      spki = message.entries[0]!.data;
    } else {
      try {
        spki = spkiFromCertificate(message.entries[0]!.data);
      } catch (err) {
        throw tlsAlert('bad_certificate', 'ERR_TLS_BAD_CERTIFICATE', (err as Error).message);
      }
      this.peerCertificates = message.entries.map((e) => e.data.slice());
      let parsed;
      try {
        parsed = keyFromSpki(spki);
      } catch (err) {
        throw tlsAlert('unsupported_certificate', 'ERR_TLS_BAD_CERTIFICATE', (err as Error).message);
      }
      if (parsed.algorithm === 'ecdsa-p256') {
        try {
          const v = this.provider.ecdsaP256Verifier(parsed.key);
          return { key: spki, verifier: { scheme: SignatureScheme.ecdsa_secp256r1_sha256, verify: (m, sig) => v.verify(m, sig) }, message };
        } catch (err) {
          throw tlsAlert('bad_certificate', 'ERR_TLS_BAD_CERTIFICATE', `Peer certificate is not a valid P-256 key: ${(err as Error).message}`);
        }
      }
    }
    let key: Uint8Array;
    let verifier: PeerSignatureVerifier;
    try {
      key = decodeEd25519SpkiBytes(spki);
      // Rejects keys off the curve or of small order before any signature is checked.
      const v = this.provider.ed25519Verifier(key);
      verifier = { scheme: SignatureScheme.ed25519, verify: (m, sig) => v.verify(m, sig) };
    } catch (err) {
      throw tlsAlert('bad_certificate', 'ERR_TLS_BAD_CERTIFICATE', `Peer certificate is not a valid Ed25519 key: ${(err as Error).message}`);
    }
    return { key, verifier, message };
  }

  /** Verify the peer's CertificateVerify (RFC 8446 §4.4.3) against `key` and the transcript so far. */
  protected verifyPeerCertificateVerify(verifier: PeerSignatureVerifier, scheme: number, signature: Uint8Array): void {
    // RFC 8446 §4.4.3: the scheme MUST be one we offered, and fit the certificate's key.
    if (scheme !== verifier.scheme || !this.offeredSchemes.includes(scheme)) {
      throw tlsAlert('illegal_parameter', 'ERR_TLS_SIGNATURE_SCHEME', `CertificateVerify uses scheme 0x${scheme.toString(16)}, not 0x${verifier.scheme.toString(16)} of the certificate's key`);
    }
    const peerSide = this.side === 'client' ? 'server' : 'client';
    const content = certificateVerifyContent(peerSide, this.transcriptHash());
    if (!verifier.verify(content, signature)) {
      throw tlsAlert('decrypt_error', 'ERR_TLS_BAD_SIGNATURE', 'CertificateVerify signature is invalid');
    }
  }

  /** Check the peer's Finished (RFC 8446 §4.4.4) against its handshake traffic secret and the transcript so far. */
  protected verifyPeerFinished(peerHandshakeSecret: Uint8Array, verifyData: Uint8Array): void {
    const expected = finishedVerifyData(this.provider, this.suite!, peerHandshakeSecret, this.transcriptHash());
    // RFC 8446 §4.4.4: a wrong verify_data → decrypt_error.
    if (verifyData.length !== expected.length || !equalBytesConstantTime(verifyData, expected)) {
      throw tlsAlert('decrypt_error', 'ERR_TLS_BAD_FINISHED', `${this.side === 'client' ? 'Server' : 'Client'} Finished does not verify`);
    }
  }

  /** The certificate types this side insists on in raw-key mode. */
  protected static readonly RAW = CertificateType.raw_public_key;
}
