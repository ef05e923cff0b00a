/**
 * TLS 1.3 server (RFC 8446 §2, §4) for QUIC (RFC 9001 §4), in iroh's profile: x25519 (with
 * HelloRetryRequest when the client's share is for another group), Ed25519 only, RFC 7250 raw
 * public keys both ways with a mandatory CertificateRequest, ALPN mandatory, SNI read but
 * never required (iroh after 1.0.3 sends none). No session tickets, no PSK, no 0-RTT: a
 * client offering them just gets a full handshake.
 *
 * @module
 */
import { tlsAlert } from './alerts.ts';
import {
  CertificateType,
  ExtensionType,
  HELLO_RETRY_REQUEST_RANDOM,
  HandshakeType,
  NamedGroup,
  SignatureScheme,
  TLS13_VERSION,
  type CipherSuite,
} from './constants.ts';
import {
  decodeAlpn,
  decodeCertTypeList,
  decodeKeyShareClient,
  decodeServerName,
  decodeSupportedVersionsClient,
  decodeU16List,
  encodeAlpn,
  encodeKeyShareServer,
  encodeU16,
  encodeU16List,
} from './extensions.ts';
import { deriveApplicationSecrets, deriveHandshakeSecrets, finishedVerifyData, type HandshakeSecrets } from './key-schedule.ts';
import {
  decodeCertificateVerify,
  decodeClientHello,
  encodeCertificateRequest,
  encodeEncryptedExtensions,
  encodeFinished,
  encodeServerHello,
  findDuplicateExtension,
  type Extension,
  type HandshakeMessage,
} from './messages.ts';
import { TlsSessionBase, type EncryptionLevel, type PeerSignatureVerifier, type TlsCommonConfig } from './session.ts';

export interface TlsServerConfig extends TlsCommonConfig {
  /**
   * Ask for and require a client certificate. Always on in raw-public-key mode (iroh's
   * server always sends CertificateRequest, iroh-wire §2).
   */
  readonly requireClientCertificate?: boolean;
  /**
   * X.509 mode: accept the client's certificate? `key` is the leaf's Ed25519 key (32 bytes)
   * or, for an ECDSA P-256 leaf, its SubjectPublicKeyInfo DER; `chain` is the DER chain, leaf
   * first. (Default: accept.)
   */
  readonly verifyClientKey?: (key: Uint8Array, chain: readonly Uint8Array[]) => boolean;
}

type State = 'wait_client_hello' | 'wait_client_hello_retry' | 'wait_certificate' | 'wait_certificate_verify' | 'wait_finished' | 'connected';

export class TlsServerSession extends TlsSessionBase {
  readonly side = 'server' as const;
  protected override readonly config: TlsServerConfig;
  #state: State = 'wait_client_hello';
  #handshake: HandshakeSecrets | undefined;
  #retrySuite: CipherSuite | undefined;
  #clientKey: Uint8Array | undefined;
  #clientKeyVerifier: PeerSignatureVerifier | undefined;
  /** The server name the client sent, if any (informational only). */
  serverName: string | undefined;

  constructor(config: TlsServerConfig) {
    super(config);
    this.config = config;
  }

  get #requireClientCert(): boolean {
    return this.rawKeys || this.config.requireClientCertificate === true;
  }

  /** The client's certificate chain when running in X.509 mode. */
  get clientCertificates(): readonly Uint8Array[] {
    return this.peerCertificates;
  }

  protected handleMessage(level: EncryptionLevel, msg: HandshakeMessage & { raw: Uint8Array }): void {
    const expected: EncryptionLevel =
      this.#state === 'wait_client_hello' || this.#state === 'wait_client_hello_retry' ? 'initial' : this.#state === 'connected' ? 'application' : 'handshake';
    if (level !== expected) throw this.unexpected(level, msg.type);
    switch (this.#state) {
      case 'wait_client_hello':
      case 'wait_client_hello_retry':
        if (msg.type !== HandshakeType.client_hello) throw this.unexpected(level, msg.type);
        return this.#onClientHello(msg);
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
        // Nothing is expected from a client after its Finished (KeyUpdate is forbidden in QUIC, RFC 9001 §6).
        throw this.unexpected(level, msg.type);
    }
  }

  #onClientHello(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const ch = decodeClientHello(msg.body);
    const retry = this.#state === 'wait_client_hello_retry';
    if (findDuplicateExtension(ch.extensions) !== undefined) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'Duplicate extension in ClientHello');
    const ext = new Map<number, Uint8Array>(ch.extensions.map((e) => [e.type, e.data]));
    // RFC 8446 §4.2.11: pre_shared_key MUST be the last extension.
    const pskIndex = ch.extensions.findIndex((e) => e.type === ExtensionType.pre_shared_key);
    if (pskIndex >= 0 && pskIndex !== ch.extensions.length - 1) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'pre_shared_key is not the last extension');

    // RFC 8446 §4.2.1: without supported_versions listing TLS 1.3 this is not a TLS 1.3 hello.
    const versions = ext.get(ExtensionType.supported_versions);
    if (versions === undefined || !decodeSupportedVersionsClient(versions).includes(TLS13_VERSION)) {
      throw tlsAlert('protocol_version', 'ERR_TLS_PROTOCOL_VERSION', 'Client does not offer TLS 1.3');
    }
    // RFC 8446 §4.1.2: legacy_compression_methods MUST be exactly one null byte.
    if (ch.compressionMethods.length !== 1 || ch.compressionMethods[0] !== 0) {
      throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'ClientHello compression methods are not [null]');
    }
    // RFC 9001 §8.4: a server SHOULD treat a non-empty legacy_session_id as a protocol violation;
    // we refuse it with illegal_parameter so the cause stays visible in the alert.
    if (this.quicMode && ch.sessionId.length !== 0) {
      throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'QUIC ClientHello has a legacy_session_id (compatibility mode)');
    }
    const suite = this.suites.find((s) => ch.cipherSuites.includes(s.id));
    if (suite === undefined) throw tlsAlert('handshake_failure', 'ERR_TLS_NO_COMMON_CIPHER_SUITE', 'No cipher suite in common');
    // RFC 8446 §4.1.4: the suite after a HelloRetryRequest must be the one it named.
    if (retry && suite.id !== this.#retrySuite!.id) throw tlsAlert('illegal_parameter', 'ERR_TLS_ILLEGAL_PARAMETER', 'Second ClientHello changed the cipher suites');

    // RFC 8446 §4.2.3: a certificate-authenticating server needs signature_algorithms.
    const sigAlgs = ext.get(ExtensionType.signature_algorithms);
    if (sigAlgs === undefined) throw tlsAlert('missing_extension', 'ERR_TLS_NO_COMMON_SIGNATURE_SCHEME', 'ClientHello has no signature_algorithms');
    // RFC 8446 §4.4.3: our CertificateVerify must use a scheme the client listed.
    if (!decodeU16List(sigAlgs, 'signature_algorithms').includes(this.signatureScheme)) {
      throw tlsAlert('handshake_failure', 'ERR_TLS_NO_COMMON_SIGNATURE_SCHEME', `Client does not accept ${this.signatureScheme === SignatureScheme.ed25519 ? 'Ed25519' : 'ECDSA P-256'} signatures`);
    }

    // RFC 9001 §8.1 / RFC 7301 §3.2: no common ALPN → no_application_protocol.
    const alpnExt = ext.get(ExtensionType.application_layer_protocol_negotiation);
    const offered = alpnExt === undefined ? [] : decodeAlpn(alpnExt);
    const alpn = this.config.alpnProtocols.find((p) => offered.some((o) => o.length === p.length && o.every((b, i) => b === p[i])));
    if (alpn === undefined) throw tlsAlert('no_application_protocol', 'ERR_TLS_NO_ALPN', alpnExt === undefined ? 'Client offered no ALPN' : 'No ALPN protocol in common');

    const clientTypes = ext.get(ExtensionType.client_certificate_type);
    const serverTypes = ext.get(ExtensionType.server_certificate_type);
    if (this.rawKeys) {
      // iroh-wire §2: the client must offer raw public keys in both directions.
      if (
        clientTypes === undefined ||
        serverTypes === undefined ||
        !decodeCertTypeList(clientTypes).includes(CertificateType.raw_public_key) ||
        !decodeCertTypeList(serverTypes).includes(CertificateType.raw_public_key)
      ) {
        throw tlsAlert('handshake_failure', 'ERR_TLS_CERT_TYPE', 'Client did not offer raw public keys in both directions');
      }
    } else if (serverTypes !== undefined && !decodeCertTypeList(serverTypes).includes(CertificateType.x509)) {
      throw tlsAlert('unsupported_certificate', 'ERR_TLS_CERT_TYPE', 'Client does not accept X.509 server certificates');
    }

    // RFC 9001 §8.2: absent quic_transport_parameters → missing_extension.
    const params = ext.get(ExtensionType.quic_transport_parameters);
    if (this.quicMode && params === undefined) {
      throw tlsAlert('missing_extension', 'ERR_TLS_MISSING_TRANSPORT_PARAMETERS', 'Client sent no QUIC transport parameters');
    }
    const sni = ext.get(ExtensionType.server_name);
    this.serverName = sni === undefined ? undefined : decodeServerName(sni);

    // Key exchange: x25519 only (RFC 8446 §4.2.7, §4.2.8).
    const groupsExt = ext.get(ExtensionType.supported_groups);
    const sharesExt = ext.get(ExtensionType.key_share);
    if (groupsExt === undefined || sharesExt === undefined) {
      throw tlsAlert('missing_extension', 'ERR_TLS_NO_COMMON_GROUP', 'ClientHello lacks supported_groups or key_share');
    }
    const groups = decodeU16List(groupsExt, 'supported_groups');
    const shares = decodeKeyShareClient(sharesExt);
    const shareGroups = new Set<number>();
    for (const s of shares) {
      // RFC 8446 §4.2.8: no duplicate groups; each share's group must be in supported_groups.
      if (shareGroups.has(s.group) || !groups.includes(s.group)) throw tlsAlert('illegal_parameter', 'ERR_TLS_BAD_KEY_SHARE', 'Malformed key_share list');
      shareGroups.add(s.group);
    }
    if (!groups.includes(NamedGroup.x25519)) throw tlsAlert('handshake_failure', 'ERR_TLS_NO_COMMON_GROUP', 'Client does not support x25519');
    const share = shares.find((s) => s.group === NamedGroup.x25519);
    if (share === undefined) {
      // RFC 8446 §4.1.4: only one HelloRetryRequest; the second hello must carry the share.
      if (retry) throw tlsAlert('illegal_parameter', 'ERR_TLS_BAD_KEY_SHARE', 'Second ClientHello still has no x25519 share');
      return this.#sendHelloRetryRequest(msg.raw, ch.sessionId, suite);
    }
    if (share.keyExchange.length !== 32) throw tlsAlert('illegal_parameter', 'ERR_TLS_BAD_KEY_SHARE', 'x25519 key share is not 32 bytes');
    const keyPair = this.provider.x25519Generate();
    const shared = keyPair.deriveSharedSecret(share.keyExchange);

    this.negotiatedAlpn = alpn.slice();
    this.clientRandom = ch.random.slice();
    if (params !== undefined) this.peerParams = params.slice();
    this.selectSuite(suite);
    this.transcriptAdd(msg.raw);

    const sh = encodeServerHello({
      random: this.provider.randomBytes(32),
      sessionIdEcho: ch.sessionId,
      cipherSuite: suite.id,
      compressionMethod: 0,
      extensions: [
        { type: ExtensionType.supported_versions, data: encodeU16(TLS13_VERSION) },
        { type: ExtensionType.key_share, data: encodeKeyShareServer({ group: NamedGroup.x25519, keyExchange: keyPair.publicKey }) },
      ],
    });
    this.transcriptAdd(sh);
    this.send('initial', sh);
    const hs = deriveHandshakeSecrets(this.provider, suite, shared, this.transcriptHash());
    this.#handshake = hs;
    this.installSecrets({ level: 'handshake', suite, local: hs.serverHandshakeTrafficSecret, remote: hs.clientHandshakeTrafficSecret });

    const eeExt: Extension[] = [{ type: ExtensionType.application_layer_protocol_negotiation, data: encodeAlpn([alpn]) }];
    if (this.rawKeys) {
      // iroh-wire §2: echo both certificate types (an iroh client aborts if either is missing).
      eeExt.push({ type: ExtensionType.client_certificate_type, data: Uint8Array.of(CertificateType.raw_public_key) });
      eeExt.push({ type: ExtensionType.server_certificate_type, data: Uint8Array.of(CertificateType.raw_public_key) });
    }
    if (this.config.transportParameters !== undefined) eeExt.push({ type: ExtensionType.quic_transport_parameters, data: this.config.transportParameters });
    this.#flight(encodeEncryptedExtensions({ extensions: eeExt }));
    if (this.#requireClientCert) {
      this.#flight(encodeCertificateRequest({ context: new Uint8Array(0), extensions: [{ type: ExtensionType.signature_algorithms, data: encodeU16List(this.offeredSchemes) }] }));
    }
    this.#flight(this.buildCertificate(new Uint8Array(0)));
    this.#flight(this.buildCertificateVerify());
    this.#flight(encodeFinished({ verifyData: finishedVerifyData(this.provider, suite, hs.serverHandshakeTrafficSecret, this.transcriptHash()) }));
    const app = deriveApplicationSecrets(this.provider, suite, hs.handshakeSecret, this.transcriptHash());
    this.exporterSecret = app.exporterMasterSecret;
    this.installSecrets({ level: 'application', suite, local: app.serverApplicationTrafficSecret, remote: app.clientApplicationTrafficSecret });
    this.#state = this.#requireClientCert ? 'wait_certificate' : 'wait_finished';
  }

  #flight(message: Uint8Array): void {
    this.transcriptAdd(message);
    this.send('handshake', message);
  }

  /** RFC 8446 §4.1.4: ask for an x25519 share; the transcript restarts with message_hash(CH1). */
  #sendHelloRetryRequest(clientHello1: Uint8Array, sessionId: Uint8Array, suite: CipherSuite): void {
    const hrr = encodeServerHello({
      random: HELLO_RETRY_REQUEST_RANDOM,
      sessionIdEcho: sessionId,
      cipherSuite: suite.id,
      compressionMethod: 0,
      extensions: [
        { type: ExtensionType.supported_versions, data: encodeU16(TLS13_VERSION) },
        { type: ExtensionType.key_share, data: encodeU16(NamedGroup.x25519) },
      ],
    });
    this.restartTranscriptForRetry(suite, clientHello1);
    this.transcriptAdd(hrr);
    this.send('initial', hrr);
    this.#retrySuite = suite;
    this.#state = 'wait_client_hello_retry';
  }

  #onCertificate(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const { key, verifier } = this.readPeerCertificate(msg.body, new Uint8Array(0));
    // RFC 8446 §4.4.2.4: an empty client certificate when one is required → certificate_required.
    if (key === undefined) throw tlsAlert('certificate_required', 'ERR_TLS_CERTIFICATE_REQUIRED', 'Client sent no certificate');
    if (!this.rawKeys && this.config.verifyClientKey && !this.config.verifyClientKey(key, this.peerCertificates)) {
      throw tlsAlert('bad_certificate', 'ERR_TLS_BAD_CERTIFICATE', 'Client certificate was rejected');
    }
    this.#clientKey = key;
    this.#clientKeyVerifier = verifier;
    this.transcriptAdd(msg.raw);
    this.#state = 'wait_certificate_verify';
  }

  #onCertificateVerify(msg: HandshakeMessage & { raw: Uint8Array }): void {
    const cv = decodeCertificateVerify(msg.body);
    this.verifyPeerCertificateVerify(this.#clientKeyVerifier!, cv.scheme, cv.signature);
    this.transcriptAdd(msg.raw);
    this.#state = 'wait_finished';
  }

  #onFinished(msg: HandshakeMessage & { raw: Uint8Array }): void {
    this.verifyPeerFinished(this.#handshake!.clientHandshakeTrafficSecret, msg.body);
    this.transcriptAdd(msg.raw);
    // The client is authenticated only now: its key becomes the peer identity.
    this.peerKey = this.#clientKeyVerifier?.scheme === SignatureScheme.ed25519 ? this.#clientKey : undefined;
    this.handshakeDone = true;
    this.#state = 'connected';
  }
}
