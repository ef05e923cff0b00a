/**
 * TLS 1.3 client (RFC 8446 §2, §4) for QUIC (RFC 9001 §4), in iroh's profile: x25519,
 * Ed25519 only, RFC 7250 raw public keys both ways, the dialled EndpointId checked against
 * the server's key, ALPN mandatory. Resumption and 0-RTT are not offered; session tickets
 * are ignored.
 *
 * @module
 */
import type { X25519KeyPair } from '../../crypto/provider.ts';
import { equalBytesConstantTime } from '../../../util/bytes.ts';
import { tlsAlert } from './alerts.ts';
import {
  CertificateType,
  ExtensionType,
  HELLO_RETRY_REQUEST_RANDOM,
  HandshakeType,
  LEGACY_VERSION,
  NamedGroup,
  SignatureScheme,
  TLS13_VERSION,
  type CipherSuite,
} from './constants.ts';
import {
  decodeAlpn,
  decodeCertType,
  decodeKeyShareServer,
  decodeU16,
  decodeU16List,
  encodeAlpn,
  encodeCertTypeList,
  encodeKeyShareClient,
  encodeServerName,
  encodeSupportedVersionsClient,
  encodeU16List,
} from './extensions.ts';
import { deriveApplicationSecrets, deriveHandshakeSecrets, finishedVerifyData, type HandshakeSecrets } from './key-schedule.ts';
import {
  decodeCertificateRequest,
  decodeCertificateVerify,
  decodeEncryptedExtensions,
  decodeServerHello,
  encodeClientHello,
  encodeFinished,
  findDuplicateExtension,
  type ClientHello,
  type Extension,
  type HandshakeMessage,
} from './messages.ts';
import { TlsSessionBase, type EncryptionLevel, type PeerSignatureVerifier, type TlsCommonConfig } from './session.ts';

export interface TlsClientConfig extends TlsCommonConfig {
  /** SNI to send: iroh's `<base32hex(id)>.iroh.invalid` in raw-key mode. */
  readonly serverName?: string;
  /** The 32-byte Ed25519 key the server must prove (the dialled EndpointId). */
  readonly expectedServerKey?: Uint8Array;
  /**
   * X.509 mode: accept the server's certificate? `key` is the leaf's Ed25519 key (32 bytes)
   * or, for an ECDSA P-256 leaf, its SubjectPublicKeyInfo DER; `chain` is the DER chain, leaf
   * first. (Default: accept.)
   */
  readonly verifyServerKey?: (key: Uint8Array, chain: readonly Uint8Array[]) => boolean;
  /**
   * Test-only: offer no key share at first, so the server must answer with a
   * HelloRetryRequest (RFC 8446 §4.2.8 allows an empty client_shares).
   */
  readonly sendEmptyKeyShare?: boolean;
}

type State = 'wait_server_hello' | 'wait_encrypted_extensions' | 'wait_certificate_or_request' | 'wait_certificate' | 'wait_certificate_verify' | 'wait_finished' | 'connected';

/** Extensions a server may answer in EncryptedExtensions when we asked (RFC 8446 §4.2 table). */
const EE_ALLOWED: ReadonlySet<number> = new Set([
  ExtensionType.server_name,
  ExtensionType.supported_groups,
  ExtensionType.application_layer_protocol_negotiation,
  ExtensionType.client_certificate_type,
  ExtensionType.server_certificate_type,
  ExtensionType.quic_transport_parameters,
]);

export class TlsClientSession extends TlsSessionBase {
  readonly side = 'client' as const;
  protected override readonly config: TlsClientConfig;
  #state: State = 'wait_server_hello';
  #keyPair: X25519KeyPair | undefined;
  #hello: ClientHello;
  #helloRaw: Uint8Array;
  #retried = false;
  #handshake: HandshakeSecrets | undefined;
  #certificateRequested: Uint8Array | undefined;
  #serverKey: Uint8Array | undefined;
  #serverKeyVerifier: PeerSignatureVerifier | undefined;

  constructor(config: TlsClientConfig) {
    super(config);
    this.config = config;
    if (this.rawKeys && config.expectedServerKey === undefined) throw new TypeError('Raw-public-key mode needs the expected server key');
    if (!config.sendEmptyKeyShare) this.#keyPair = this.provider.x25519Generate();
    this.#hello = {
      random: this.provider.randomBytes(32),
      // RFC 9001 §8.4: QUIC clients MUST NOT request TLS 1.3 compatibility mode.
      sessionId: new Uint8Array(0),
      cipherSuites: this.suites.map((s) => s.id),
      compressionMethods: Uint8Array.of(0),
      extensions: this.#helloExtensions(),
    };
    this.clientRandom = this.#hello.random;
    this.#helloRaw = encodeClientHello(this.#hello);
    this.transcriptAdd(this.#helloRaw);
    this.send('initial', this.#helloRaw);
  }

  #helloExtensions(cookie?: Uint8Array): Extension[] {
    const ext: Extension[] = [];
    if (this.config.serverName !== undefined) ext.push({ type: ExtensionType.server_name, data: encodeServerName(this.config.serverName) });
    ext.push({ type: ExtensionType.supported_versions, data: encodeSupportedVersionsClient([TLS13_VERSION]) });
    ext.push({ type: ExtensionType.supported_groups, data: encodeU16List([NamedGroup.x25519]) });
    ext.push({ type: ExtensionType.signature_algorithms, data: encodeU16List(this.offeredSchemes) });
    const shares = this.#keyPair ? [{ group: NamedGroup.x25519, keyExchange: this.#keyPair.publicKey }] : [];
    ext.push({ type: ExtensionType.key_share, data: encodeKeyShareClient(shares) });
    ext.push({ type: ExtensionType.application_layer_protocol_negotiation, data: encodeAlpn(this.config.alpnProtocols) });
    if (this.rawKeys) {
      // RFC 7250 §3 / iroh-wire §2: offer raw public keys, and only them, both ways.
      ext.push({ type: ExtensionType.client_certificate_type, data: encodeCertTypeList([CertificateType.raw_public_key]) });
      ext.push({ type: ExtensionType.server_certificate_type, data: encodeCertTypeList([CertificateType.raw_public_key]) });
    }
    if (cookie !== undefined) ext.push({ type: ExtensionType.cookie, data: cookie });
    if (this.config.transportParameters !== undefined) {
      ext.push({ type: ExtensionType.quic_transport_parameters, data: this.config.transportParameters });
    }
    return ext;
  }

  /** The server's certificate chain when running in X.509 mode. */
  get serverCertificates(): readonly Uint8Array[] {
    return this.peerCertificates;
  }

  protected handleMessage(level: EncryptionLevel, msg: HandshakeMessage & { raw: Uint8Array }): void {
    const expected: EncryptionLevel = this.#state === 'wait_server_hello' ? 'initial' : this.#state === 'connected' ? 'application' : 'handshake';
    if (level !== expected) throw this.unexpected(level, msg.type);
    switch (this.#state) {
      case 'wait_server_hello':
        if (msg.type !== HandshakeType.server_hello) throw this.unexpected(level, msg.type);
        return this.#onServerHello(msg);
      case 'wait_encrypted_extensions':
        if (msg.type !== HandshakeType.encrypted_extensions) throw this.unexpected(level, msg.type);
        return this.#onEncryptedExtensions(msg);
      case 'wait_certificate_or_request':
        if (msg.type === HandshakeType.certificate_request) return this.#onCertificateRequest(msg);
        if (msg.type !== HandshakeType.certificate) throw this.unexpected(level, msg.type);
        return this.#onCertificate(msg);
      case 'wait_certificate':
        if (msg.type !== HandshakeType.certificate) throw this.unexpected(level, msg.type);
        return this.#onCertificate(msg);
      case 'wait_certificate_verify':
        if (msg.type !== HandshakeType.certificate_verify) throw this.unexpected(level, msg.type);
        return this.#onCertificateVerify(msg);
      case 'wait_finished':
        if (msg.type !== HandshakeType.finished) throw this.unexpected(level, msg.type);
        return this.#onFinished(msg);
      case 'connected':
        // Session tickets are ignored: we never resume. Anything else after the handshake
        // (KeyUpdate is forbidden in QUIC, RFC 9001 §6) is unexpected.
        if (msg.type === HandshakeType.new_session_ticket) return;
        throw this.unexpected(level, msg.type);
    }
  }

  #onServerHello(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const sh = decodeServerHello(msg.body);
    if (sh.legacyVersion !== LEGACY_VERSION) throw tlsAlert('protocol_version', 'ERR_TLS_PROTOCOL_VERSION', 'ServerHello legacy_version is not 0x0303');
    if (sh.compressionMethod !== 0) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'ServerHello compression method is not null');
    if (sh.sessionIdEcho.length !== this.#hello.sessionId.length || sh.sessionIdEcho.some((b, i) => b !== this.#hello.sessionId[i])) {
      throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'ServerHello does not echo our session id');
    }
    const suite = this.suites.find((s) => s.id === sh.cipherSuite);
    if (suite === undefined) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', `Server chose cipher suite 0x${sh.cipherSuite.toString(16)} we did not offer`);
    if (findDuplicateExtension(sh.extensions) !== undefined) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'Duplicate extension in ServerHello');
    const isRetry = sh.random.every((b, i) => b === HELLO_RETRY_REQUEST_RANDOM[i]);
    const allowed = isRetry
      ? [ExtensionType.supported_versions, ExtensionType.key_share, ExtensionType.cookie]
      : [ExtensionType.supported_versions, ExtensionType.key_share];
    let version: number | undefined;
    let keyShare: Uint8Array | undefined;
    let cookie: Uint8Array | undefined;
    for (const e of sh.extensions) {
      // RFC 8446 §4.2: an extension response we did not ask for → unsupported_extension.
      if (!allowed.includes(e.type as never)) throw tlsAlert('unsupported_extension', 'ERR_TLS_UNSUPPORTED_EXTENSION', `Unexpected extension ${e.type} in ServerHello`);
      if (e.type === ExtensionType.supported_versions) version = decodeU16(e.data, 'supported_versions');
      else if (e.type === ExtensionType.key_share) keyShare = e.data;
      else cookie = e.data;
    }
    // RFC 8446 §4.2.1: the selected version MUST be one we offered (TLS 1.3 only).
    if (version !== TLS13_VERSION) throw tlsAlert('protocol_version', 'ERR_TLS_PROTOCOL_VERSION', 'Server did not select TLS 1.3');
    if (isRetry) return this.#onHelloRetryRequest(msg, suite, keyShare, cookie);
    // RFC 8446 §4.1.4: after a HelloRetryRequest the ServerHello's suite must be the same.
    if (this.suite !== undefined && this.suite.id !== suite.id) {
      throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'ServerHello cipher suite differs from the HelloRetryRequest');
    }
    if (keyShare === undefined) throw tlsAlert('missing_extension', 'ERR_TLS_BAD_KEY_SHARE', 'ServerHello has no key_share');
    const share = decodeKeyShareServer(keyShare);
    if (share.group !== NamedGroup.x25519 || this.#keyPair === undefined || share.keyExchange.length !== 32) {
      throw tlsAlert('illegal_parameter', 'ERR_TLS_BAD_KEY_SHARE', `Server key share is for group 0x${share.group.toString(16)}, which we did not send`);
    }
    const shared = this.#keyPair.deriveSharedSecret(share.keyExchange);
    this.selectSuite(suite);
    this.transcriptAdd(msg.raw);
    this.#handshake = deriveHandshakeSecrets(this.provider, suite, shared, this.transcriptHash());
    this.installSecrets({
      level: 'handshake',
      suite,
      local: this.#handshake.clientHandshakeTrafficSecret,
      remote: this.#handshake.serverHandshakeTrafficSecret,
    });
    this.#state = 'wait_encrypted_extensions';
  }

  #onHelloRetryRequest(msg: HandshakeMessage & { raw: Uint8Array }, suite: CipherSuite, keyShare: Uint8Array | undefined, cookie: Uint8Array | undefined): void {
    // RFC 8446 §4.1.4: a second HelloRetryRequest is an unexpected_message.
    if (this.#retried) throw tlsAlert('unexpected_message', 'ERR_TLS_UNEXPECTED_MESSAGE', 'Second HelloRetryRequest');
    this.#retried = true;
    if (keyShare === undefined && cookie === undefined) {
      throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'HelloRetryRequest would not change the ClientHello');
    }
    if (keyShare !== undefined) {
      const group = decodeU16(keyShare, 'key_share');
      // RFC 8446 §4.2.8: the group must be one we support and not one we already sent a share for.
      if (group !== NamedGroup.x25519 || this.#keyPair !== undefined) {
        throw tlsAlert('illegal_parameter', 'ERR_TLS_BAD_KEY_SHARE', `HelloRetryRequest asks for group 0x${group.toString(16)}`);
      }
      this.#keyPair = this.provider.x25519Generate();
    }
    this.restartTranscriptForRetry(suite, this.#helloRaw);
    this.transcriptAdd(msg.raw);
    this.#hello = { ...this.#hello, extensions: this.#helloExtensions(cookie) };
    this.#helloRaw = encodeClientHello(this.#hello);
    this.transcriptAdd(this.#helloRaw);
    this.send('initial', this.#helloRaw);
  }

  #onEncryptedExtensions(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const ee = decodeEncryptedExtensions(msg.body);
    if (findDuplicateExtension(ee.extensions) !== undefined) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'Duplicate extension in EncryptedExtensions');
    let clientCertType: number | undefined;
    let serverCertType: number | undefined;
    for (const e of ee.extensions) {
      const offered =
        EE_ALLOWED.has(e.type) &&
        (e.type !== ExtensionType.server_name || this.config.serverName !== undefined) &&
        (e.type !== ExtensionType.quic_transport_parameters || this.quicMode) &&
        ((e.type !== ExtensionType.client_certificate_type && e.type !== ExtensionType.server_certificate_type) || this.rawKeys);
      if (!offered) throw tlsAlert('unsupported_extension', 'ERR_TLS_UNSUPPORTED_EXTENSION', `Unexpected extension ${e.type} in EncryptedExtensions`);
      switch (e.type) {
        case ExtensionType.application_layer_protocol_negotiation: {
          const list = decodeAlpn(e.data);
          // RFC 7301 §3.1: the server answers with exactly one protocol the client offered.
          const chosen = list.length === 1 ? list[0]! : undefined;
          if (chosen === undefined || !this.config.alpnProtocols.some((p) => p.length === chosen.length && p.every((b, i) => b === chosen[i]))) {
            throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'Server selected an ALPN protocol we did not offer');
          }
          this.negotiatedAlpn = chosen.slice();
          break;
        }
        case ExtensionType.client_certificate_type:
          clientCertType = decodeCertType(e.data);
          break;
        case ExtensionType.server_certificate_type:
          serverCertType = decodeCertType(e.data);
          break;
        case ExtensionType.quic_transport_parameters:
          this.peerParams = e.data.slice();
          break;
        default:
          break;
      }
    }
    // RFC 9001 §8.1: without ALPN agreement the client MUST abort with no_application_protocol.
    if (this.negotiatedAlpn === undefined) throw tlsAlert('no_application_protocol', 'ERR_TLS_NO_ALPN', 'Server did not select an ALPN protocol');
    // iroh-wire §2: both certificate types must be echoed as raw public keys, or we abort (as rustls).
    if (this.rawKeys && (clientCertType !== CertificateType.raw_public_key || serverCertType !== CertificateType.raw_public_key)) {
      throw tlsAlert('handshake_failure', 'ERR_TLS_CERT_TYPE', 'Server did not agree to raw public keys in both directions');
    }
    // RFC 9001 §8.2: absent quic_transport_parameters → missing_extension.
    if (this.quicMode && this.peerParams === undefined) {
      throw tlsAlert('missing_extension', 'ERR_TLS_MISSING_TRANSPORT_PARAMETERS', 'Server sent no QUIC transport parameters');
    }
    this.transcriptAdd(msg.raw);
    this.#state = 'wait_certificate_or_request';
  }

  #onCertificateRequest(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const cr = decodeCertificateRequest(msg.body);
    // RFC 8446 §4.3.2: the context is empty during the handshake.
    if (cr.context.length !== 0) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'CertificateRequest context must be empty during the handshake');
    if (findDuplicateExtension(cr.extensions) !== undefined) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'Duplicate extension in CertificateRequest');
    const sigAlgs = cr.extensions.find((e) => e.type === ExtensionType.signature_algorithms);
    // RFC 8446 §4.3.2: "The 'signature_algorithms' extension MUST be specified".
    if (sigAlgs === undefined) throw tlsAlert('missing_extension', 'ERR_TLS_NO_COMMON_SIGNATURE_SCHEME', 'CertificateRequest without signature_algorithms');
    // RFC 8446 §4.4.3: our CertificateVerify must use a scheme the server listed.
    if (!decodeU16List(sigAlgs.data, 'signature_algorithms').includes(this.signatureScheme)) {
      throw tlsAlert('handshake_failure', 'ERR_TLS_NO_COMMON_SIGNATURE_SCHEME', `Server does not accept ${this.signatureScheme === SignatureScheme.ed25519 ? 'Ed25519' : 'ECDSA P-256'} client signatures`);
    }
    this.#certificateRequested = cr.context.slice();
    this.transcriptAdd(msg.raw);
    this.#state = 'wait_certificate';
  }

  #onCertificate(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const { key, verifier } = this.readPeerCertificate(msg.body, new Uint8Array(0));
    // RFC 8446 §4.4.2.4: a server's certificate list must never be empty.
    if (key === undefined) throw tlsAlert('decode_error', 'ERR_TLS_BAD_CERTIFICATE', 'Server sent an empty certificate list');
    const expected = this.config.expectedServerKey;
    if (expected !== undefined && !equalBytesConstantTime(expected, key)) {
      throw tlsAlert('bad_certificate', 'ERR_TLS_PEER_ID_MISMATCH', 'Server key is not the EndpointId we dialled');
    }
    if (!this.rawKeys && this.config.verifyServerKey && !this.config.verifyServerKey(key, this.peerCertificates)) {
      throw tlsAlert('bad_certificate', 'ERR_TLS_BAD_CERTIFICATE', 'Server certificate was rejected');
    }
    this.#serverKey = key;
    this.#serverKeyVerifier = verifier;
    this.transcriptAdd(msg.raw);
    this.#state = 'wait_certificate_verify';
  }

  #onCertificateVerify(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const cv = decodeCertificateVerify(msg.body);
    this.verifyPeerCertificateVerify(this.#serverKeyVerifier!, cv.scheme, cv.signature);
    this.peerKey = this.#serverKeyVerifier!.scheme === SignatureScheme.ed25519 ? this.#serverKey : undefined;
    this.transcriptAdd(msg.raw);
    this.#state = 'wait_finished';
  }

  #onFinished(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const suite = this.suite!;
    const hs = this.#handshake!;
    this.verifyPeerFinished(hs.serverHandshakeTrafficSecret, msg.body);
    this.transcriptAdd(msg.raw);
    const app = deriveApplicationSecrets(this.provider, suite, hs.handshakeSecret, this.transcriptHash());
    this.exporterSecret = app.exporterMasterSecret;
    if (this.#certificateRequested !== undefined) {
      const cert = this.buildCertificate(this.#certificateRequested);
      this.transcriptAdd(cert);
      this.send('handshake', cert);
      // RFC 8446 §4.4.2: a client without a certificate sends an empty Certificate and (§4.4.3) no CertificateVerify.
      if (this.config.certificate.type === 'raw-public-key' || this.config.certificate.chain.length > 0) {
        const cv = this.buildCertificateVerify();
        this.transcriptAdd(cv);
        this.send('handshake', cv);
      }
    }
    const fin = encodeFinished({ verifyData: finishedVerifyData(this.provider, suite, hs.clientHandshakeTrafficSecret, this.transcriptHash()) });
    this.transcriptAdd(fin);
    this.send('handshake', fin);
    this.installSecrets({ level: 'application', suite, local: app.clientApplicationTrafficSecret, remote: app.serverApplicationTrafficSecret });
    this.handshakeDone = true;
    this.#state = 'connected';
  }
}
