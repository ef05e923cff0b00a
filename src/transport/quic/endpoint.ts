/**
 * The sans-IO QUIC endpoint: one per socket. It routes datagrams to connections by
 * Destination Connection ID, creates server connections from new Initials, answers unknown
 * versions with Version Negotiation (RFC 9000 §6) and unknown short-header packets with
 * stateless resets (RFC 9000 §10.3), both rate-limited, and drains every connection's
 * output and timers for the driver.
 *
 * @module
 */
import type { CryptoProvider, Ed25519Signer } from '../crypto/provider.ts';
import { DEFAULT_CONNECTION_SETTINGS, type ConnectionSettings } from './config.ts';
import { Connection, type ConnectionHost } from './connection/connection.ts';
import type { PathAddr, Transmit } from './connection/types.ts';
import {
  MAX_CONNECTIONS,
  MAX_CONNECTIONS_PER_SOURCE,
  MAX_HANDSHAKES_PER_SOURCE,
  MAX_HANDSHAKING,
  MAX_STATELESS_RESETS_PER_SECOND,
  MAX_VERSION_NEGOTIATIONS_PER_SECOND,
  RETRY_THRESHOLD,
} from './limits.ts';
import { TlsClientSession, TlsServerSession } from './tls/index.ts';
import { spkiFromCertificate } from './tls/x509.ts';
import { QUIC_V1, UnsupportedVersionError, parseHeader } from './wire/header.ts';
import { encodeTransportParameters, type DirectAddress, type TransportParameters } from './wire/transport-params.ts';
import { retryIntegrityTag } from './protection/retry.ts';
import { decodePacketNumber, initialKeys, unprotectHeader, type DirectionalKeys } from './protection/packet-keys.ts';

/** The private key of an X.509 leaf certificate. */
export type X509PrivateKey = { readonly algorithm: 'ed25519'; readonly seed: Uint8Array } | { readonly algorithm: 'ecdsa-p256'; readonly scalar: Uint8Array };

/** What a peer presented in an X.509 handshake, for {@link QuicCredentials}' `verifyPeer`. */
export interface PeerCertificateInfo {
  /** Our role in the connection. */
  readonly side: 'client' | 'server';
  /** The peer's certificates, DER, leaf first. */
  readonly chain: readonly Uint8Array[];
  /** The leaf's SubjectPublicKeyInfo, DER. */
  readonly spki: Uint8Array;
  /** Client: the server name we dialled; server: the name the client sent (SNI), if any. */
  readonly serverName: string | undefined;
}

/**
 * How this endpoint authenticates in TLS. The default is iroh's profile: RFC 7250 raw public
 * keys from `secretKey`, the peer identified by its Ed25519 key. `'x509'` makes the QUIC stack
 * a general QUIC v1 endpoint: a certificate chain and its key (Ed25519 or ECDSA P-256), and
 * the application's decision on the peer's chain.
 */
export type QuicCredentials =
  | { readonly type: 'raw-public-key' }
  | {
      readonly type: 'x509';
      /** Our certificates, DER, leaf first. */
      readonly chain: readonly Uint8Array[];
      readonly privateKey: X509PrivateKey;
      /**
       * Accept the peer's certificate? Called during the handshake, after the chain arrived and
       * before its signature is checked; false aborts with bad_certificate. A server calls it only
       * for clients it asked for a certificate.
       */
      readonly verifyPeer: (peer: PeerCertificateInfo) => boolean;
      /** Server: ask every client for a certificate and require one (default false). */
      readonly requireClientCertificate?: boolean;
    };

export interface QuicEndpointOptions {
  readonly provider: CryptoProvider;
  /** Our Ed25519 secret key (32-byte seed): our identity in TLS (with raw public keys). */
  readonly secretKey: Uint8Array;
  /** TLS credentials (default: raw public keys from `secretKey`, iroh's profile). */
  readonly credentials?: QuicCredentials;
  /** ALPN protocols accepted from clients; with none, incoming connections are refused. */
  readonly alpns?: readonly Uint8Array[];
  readonly settings?: Partial<ConnectionSettings>;
  /** Length of the connection IDs we issue (iroh uses 8). */
  readonly cidLength?: number;
  /** Key for stateless-reset tokens; random if not given (RFC 9000 §10.3.2). */
  readonly statelessResetKey?: Uint8Array;
  /** Cipher suites in preference order (default 0x1301, 0x1302, 0x1303). */
  readonly cipherSuites?: readonly number[];
  /** NSS key-log sink (SSLKEYLOGFILE). */
  readonly keyLog?: (line: string) => void;
  /**
   * When to validate client addresses with a Retry round trip before any handshake work
   * (RFC 9000 §8.1.2): it costs the client one RTT and stops spoofed-source floods from
   * creating state. Default `'auto'`; `true` is `'always'`, `false` is `'never'`.
   */
  readonly retry?: boolean | RetryMode | RetryPolicy;
  /**
   * Our direct addresses, advertised to clients in the sdnet_direct_addresses transport
   * parameter (they may upgrade a relayed connection to one). Undefined: not advertised, and
   * clients keep to the path they started on.
   */
  readonly directAddresses?: () => readonly DirectAddress[];
  /** Turns a direct address a server advertised into a path we can send on (or undefined). */
  readonly resolvePath?: (address: DirectAddress) => PathAddr | undefined;
}

/** `'auto'`: Retry only under load (see {@link RetryPolicy}); `'always'`; `'never'`. */
export type RetryMode = 'auto' | 'always' | 'never';

/**
 * When a server answers a new client's Initial with a Retry (RFC 9000 §8.1.2). Under
 * `'auto'`, Initials without a token get a Retry once `threshold` handshakes are in progress,
 * or once their source address has {@link MAX_HANDSHAKES_PER_SOURCE} handshakes in progress
 * that have not proved their address: spoofed Initials then cannot fill the handshake slots,
 * and honest clients still get in for one more round trip. Under `'never'` such Initials are
 * dropped instead.
 */
export interface RetryPolicy {
  readonly mode: RetryMode;
  /** `'auto'`: handshakes in progress from which every new client must retry (default {@link RETRY_THRESHOLD}). */
  readonly threshold?: number;
}

/**
 * The address an Initial counts against for the per-source caps: the IP of a UDP path (all
 * ports of one host together), or the relayed path itself (the relay authenticated the peer's
 * endpoint id; the relay's own address is shared by all its clients). None for loopback.
 */
function sourceOf(path: PathAddr): string | undefined {
  if (path.loopback) return undefined;
  return path.relayed ? path.key : (path.host ?? path.key);
}

/**
 * Datagrams a connection sends in a row before the next connection's turn (round-robin in
 * {@link QuicEndpoint.pollTransmit}).
 */
const TRANSMIT_QUANTUM = 8;

/** How long a Retry token stays valid (µs). */
const RETRY_TOKEN_LIFETIME = 10_000_000;

export interface ConnectOptions {
  /** Further paths to the same server; the first flight goes to all (iroh-wire §3.5). */
  readonly alternativePaths?: readonly PathAddr[];
  /** The server's Ed25519 public key (the EndpointId dialled); required with raw public keys. */
  readonly serverKey?: Uint8Array;
  readonly alpn: Uint8Array;
  /** SNI; iroh's `<base32hex(id)>.iroh.invalid`. */
  readonly serverName?: string;
  readonly settings?: Partial<ConnectionSettings>;
  /** Test-only: offer no key share first (forces a HelloRetryRequest). */
  readonly sendEmptyKeyShare?: boolean;
  readonly cipherSuites?: readonly number[];
  /**
   * Dial a server that presents an X.509 certificate while we present none, whatever this
   * endpoint's own credentials (QUIC address discovery against a relay, iroh-wire §1.11):
   * the server's chain is accepted when this returns true.
   */
  readonly verifyX509Server?: (peer: PeerCertificateInfo) => boolean;
}

/** Counts datagrams dropped by the endpoint, by reason. */
export interface EndpointStats {
  connections: number;
  /** Connection IDs of ours that route datagrams to a connection here (every path id). */
  connectionIds: number;
  dropped: Record<string, number>;
  statelessResets: number;
  versionNegotiations: number;
  retries: number;
  statelessResetsReceived: number;
  /**
   * Unexpected exceptions inside a connection (bugs, never peer input), each caught at the
   * endpoint and turned into an INTERNAL_ERROR close of that one connection. Should stay 0.
   */
  internalErrors: number;
}

/** A Map key for a connection ID: one char per byte (much cheaper than hex, per datagram). */
function cidKey(cid: Uint8Array): string {
  return String.fromCharCode.apply(null, cid as unknown as number[]);
}

export class QuicEndpoint implements ConnectionHost {
  readonly #provider: CryptoProvider;
  readonly #secretKey: Uint8Array;
  readonly #credentials: QuicCredentials;
  #alpns: readonly Uint8Array[];
  readonly #settings: ConnectionSettings;
  readonly #cidLength: number;
  readonly #resetKey: Uint8Array;
  readonly #cipherSuites: readonly number[] | undefined;
  readonly #keyLog: ((line: string) => void) | undefined;
  /** One signer for every connection (importing the key costs ~45 µs). */
  readonly #signer: Ed25519Signer;
  readonly #retryMode: RetryMode;
  readonly #retryThreshold: number;
  readonly #directAddresses: (() => readonly DirectAddress[]) | undefined;
  readonly #resolvePath: ((address: DirectAddress) => PathAddr | undefined) | undefined;
  /** Seals Retry tokens (a key only this endpoint knows). */
  readonly #tokenKey: Uint8Array;
  readonly #byCid = new Map<string, Connection>();
  readonly #connections: Connection[] = [];
  readonly #incoming: Connection[] = [];
  readonly #stateless: Transmit[] = [];
  #cursor = 0;
  /** Datagrams the connection at `#cursor` sent in its current turn. */
  #turn = 0;
  /** The latest time we were given (for failures found where no time is passed). */
  #now = 0;
  #resetWindow = { start: 0, count: 0 };
  #vnWindow = { start: 0, count: 0 };
  readonly #stats: EndpointStats = { connections: 0, connectionIds: 0, dropped: {}, statelessResets: 0, versionNegotiations: 0, retries: 0, statelessResetsReceived: 0, internalErrors: 0 };

  constructor(options: QuicEndpointOptions) {
    this.#provider = options.provider;
    this.#secretKey = options.secretKey;
    this.#credentials = options.credentials ?? { type: 'raw-public-key' };
    if (this.#credentials.type === 'x509' && this.#credentials.chain.length === 0) throw new TypeError('X.509 credentials need at least one certificate');
    this.#alpns = options.alpns ?? [];
    this.#settings = { ...DEFAULT_CONNECTION_SETTINGS, ...options.settings };
    this.#cidLength = options.cidLength ?? 8;
    this.#resetKey = options.statelessResetKey ?? options.provider.randomBytes(32);
    this.#cipherSuites = options.cipherSuites;
    this.#keyLog = options.keyLog;
    this.#signer = options.provider.ed25519Signer(options.secretKey);
    const retry = options.retry ?? 'auto';
    this.#retryMode = retry === true ? 'always' : retry === false ? 'never' : typeof retry === 'string' ? retry : retry.mode;
    this.#retryThreshold = typeof retry === 'object' ? (retry.threshold ?? RETRY_THRESHOLD) : RETRY_THRESHOLD;
    this.#directAddresses = options.directAddresses;
    this.#resolvePath = options.resolvePath;
    this.#tokenKey = options.provider.randomBytes(16);
    if (this.#cidLength < 4 || this.#cidLength > 20) throw new RangeError('Connection ID length must be 4..20');
  }

  /**
   * Replace the ALPN protocols accepted from now on (connections already handshaking keep
   * theirs). With none, new connection attempts are dropped.
   */
  setAlpns(alpns: readonly Uint8Array[]): void {
    for (const p of alpns) if (p.length === 0 || p.length > 255) throw new RangeError('ALPN protocols must be 1..255 bytes');
    this.#alpns = [...alpns];
  }

  get stats(): EndpointStats {
    let internalErrors = this.#stats.internalErrors;
    for (const c of this.#connections) internalErrors += c.internalErrors;
    return { ...this.#stats, connections: this.#connections.length, connectionIds: this.#byCid.size, dropped: { ...this.#stats.dropped }, internalErrors };
  }

  /** Hand a datagram to a connection (an exception escaping it closes that connection only). */
  #deliver(c: Connection, now: number, path: PathAddr, data: Uint8Array): void {
    try {
      c.handleDatagram(now, path, data);
    } catch (err) {
      c.failInternal(now, err);
    }
  }

  /**
   * Run one connection's handler; an exception escaping it (a bug) closes that connection
   * with INTERNAL_ERROR instead of leaving the endpoint (and the driver's timer) mid-loop.
   */
  #guard<T>(c: Connection, now: number, f: (c: Connection) => T): T | undefined {
    try {
      return f(c);
    } catch (err) {
      c.failInternal(now, err);
      return undefined;
    }
  }

  /** Live connections (any state but closed). */
  get connections(): readonly Connection[] {
    return this.#connections;
  }

  // ---- ConnectionHost

  /** Peer reset tokens of the connection IDs our connections send with → connection. */
  readonly #resetTokens = new Map<string, Connection>();
  readonly #tokenOf = new Map<Connection, string>();

  setPeerResetToken(connection: Connection, token: Uint8Array | undefined): void {
    const old = this.#tokenOf.get(connection);
    if (old !== undefined) {
      this.#resetTokens.delete(old);
      this.#tokenOf.delete(connection);
    }
    if (token === undefined) return;
    const key = cidKey(token);
    this.#resetTokens.set(key, connection);
    this.#tokenOf.set(connection, key);
  }

  addCid(cid: Uint8Array, connection: Connection): void {
    this.#byCid.set(cidKey(cid), connection);
  }

  removeCid(cid: Uint8Array): void {
    this.#byCid.delete(cidKey(cid));
  }

  /** Work ahead of need while the driver has nothing urgent (the provider's spare ephemeral keys). */
  prepare(): void {
    this.#provider.prepare?.();
  }

  /** RFC 9000 §10.3.2: tokens derived from a static key, so a restarted endpoint can still reset. */
  resetToken(cid: Uint8Array): Uint8Array {
    return this.#provider.hmac('sha256', this.#resetKey, cid).subarray(0, 16);
  }

  // ---- connections

  /** Start a connection to `path`. */
  connect(now: number, path: PathAddr, options: ConnectOptions): Connection {
    if (this.#credentials.type === 'raw-public-key' && options.serverKey === undefined && options.verifyX509Server === undefined) throw new TypeError('With raw public keys, connect() needs the server key');
    // RFC 9000 §7.2: the client's first DCID is at least 8 unpredictable bytes (iroh uses 20).
    const dcid = this.#provider.randomBytes(20);
    const settings = { ...this.#settings, ...options.settings };
    const connection = new Connection({
      side: 'client',
      provider: this.#provider,
      settings,
      host: this,
      originalDcid: dcid,
      path,
      ...(options.alternativePaths ? { alternativePaths: options.alternativePaths } : {}),
      ...(this.#resolvePath ? { resolvePath: this.#resolvePath } : {}),
      // n0 NAT traversal: the client announces its addresses in REACH_OUT rounds.
      ...(this.#directAddresses ? { directAddresses: this.#directAddresses() } : {}),
      now,
      cidLength: this.#cidLength,
      tls: (params) =>
        new TlsClientSession({
          provider: this.#provider,
          ...(options.verifyX509Server ? this.#anonymousX509Client(options.verifyX509Server, options.serverName) : this.#tlsCredentials('client', () => options.serverName)),
          alpnProtocols: [options.alpn],
          transportParameters: this.#encodeParams(params),
          ...(options.serverKey !== undefined ? { expectedServerKey: options.serverKey } : {}),
          ...(options.serverName !== undefined ? { serverName: options.serverName } : {}),
          ...(options.sendEmptyKeyShare ? { sendEmptyKeyShare: true } : {}),
          ...(this.#keyLog ? { keyLog: this.#keyLog } : {}),
          ...((options.cipherSuites ?? this.#cipherSuites) ? { cipherSuites: options.cipherSuites ?? this.#cipherSuites! } : {}),
        }),
    });
    this.#connections.push(connection);
    this.#stats.connections++;
    return connection;
  }

  /** A client presenting no certificate to an X.509 server (our seed only fills the unused signer slot). */
  #anonymousX509Client(verify: (peer: PeerCertificateInfo) => boolean, serverName: string | undefined) {
    return {
      certificate: { type: 'x509' as const, chain: [], secretKey: this.#secretKey },
      verifyServerKey: (_key: Uint8Array, chain: readonly Uint8Array[]): boolean => verify({ side: 'client', chain, spki: spkiFromCertificate(chain[0]!), serverName }),
    };
  }

  /** The TLS identity options of either role, from this endpoint's credentials. */
  #tlsCredentials(side: 'client' | 'server', serverName: () => string | undefined) {
    const c = this.#credentials;
    if (c.type === 'raw-public-key') return { certificate: { type: 'raw-public-key' as const, secretKey: this.#secretKey }, signer: this.#signer };
    const verify = (_key: Uint8Array, chain: readonly Uint8Array[]): boolean => c.verifyPeer({ side, chain, spki: spkiFromCertificate(chain[0]!), serverName: serverName() });
    const key = c.privateKey;
    return {
      certificate: { type: 'x509' as const, chain: c.chain, ...(key.algorithm === 'ed25519' ? { secretKey: key.seed } : { secretKey: key.scalar, keyAlgorithm: 'ecdsa-p256' as const }) },
      ...(side === 'client' ? { verifyServerKey: verify } : { verifyClientKey: verify, requireClientCertificate: c.requireClientCertificate === true }),
    };
  }

  #encodeParams(params: TransportParameters): Uint8Array {
    // RFC 9000 §18.1: a GREASE parameter keeps peers tolerant of unknown ids.
    return encodeTransportParameters(params, { grease: this.#provider.randomBytes(18) });
  }

  /** The next accepted server-side connection (still handshaking). */
  pollIncoming(): Connection | undefined {
    return this.#incoming.shift();
  }

  #drop(reason: string): void {
    this.#stats.dropped[reason] = (this.#stats.dropped[reason] ?? 0) + 1;
  }

  /**
   * A datagram arrived on `path`. The endpoint takes ownership of `data` (header protection
   * is removed in place). Never throws for hostile input.
   */
  handleDatagram(now: number, path: PathAddr, data: Uint8Array): void {
    this.#now = now;
    if (data.length === 0) return this.#drop('empty');
    const first = data[0]!;
    if ((first & 0x80) === 0) {
      // RFC 9000 §17.3.1: a short header with the fixed bit 0 is discarded.
      if ((first & 0x40) === 0) return this.#drop('fixed-bit');
      const cid = data.subarray(1, 1 + this.#cidLength);
      const conn = cid.length === this.#cidLength ? this.#byCid.get(cidKey(cid)) : undefined;
      if (conn) return this.#deliver(conn, now, path, data);
      // RFC 9000 §10.3.1: a datagram that matches no connection may be a stateless reset for one.
      if (data.length >= 21) {
        const reset = this.#resetTokens.get(cidKey(data.subarray(data.length - 16)));
        if (reset) {
          this.#stats.statelessResetsReceived++;
          return void this.#guard(reset, now, (c) => c.handleStatelessReset(now));
        }
      }
      return this.#maybeStatelessReset(now, path, data);
    }
    let header;
    try {
      header = parseHeader(data, 0, this.#cidLength);
    } catch (err) {
      if (err instanceof UnsupportedVersionError) return this.#maybeVersionNegotiation(now, path, data, err);
      return this.#drop('malformed');
    }
    if (header.form === 'short') return this.#drop('malformed');
    const conn = this.#byCid.get(cidKey(header.dcid));
    if (conn) return this.#deliver(conn, now, path, data);
    if (header.form !== 'long' || header.type !== 'initial') return this.#drop('unknown-connection');
    this.#onNewInitial(now, path, data, header.dcid, header.scid, header.token);
  }

  /** An Initial that matches no connection: accept it, ask for a Retry, or drop it. */
  #onNewInitial(now: number, path: PathAddr, data: Uint8Array, dcid: Uint8Array, scid: Uint8Array, token: Uint8Array): void {
    if (this.#alpns.length === 0) return this.#drop('not-accepting');
    // RFC 9000 §14.1: a server MUST discard an Initial in a datagram smaller than 1200 bytes.
    if (data.length < 1200) return this.#drop('short-initial');
    // RFC 9000 §7.2: the client's first DCID is at least 8 bytes.
    if (dcid.length < 8) return this.#drop('short-dcid');
    const source = sourceOf(path);
    let handshaking = 0;
    let fromSource = 0;
    let unvalidatedFromSource = 0;
    let validatedFromSource = 0;
    for (const c of this.#connections) {
      if (c.side !== 'server') continue;
      const mine = source !== undefined && sourceOf(c.path) === source;
      if (mine) fromSource++;
      if (c.state !== 'handshaking') continue;
      handshaking++;
      if (mine && c.addressValidated) validatedFromSource++;
      else if (mine) unvalidatedFromSource++;
    }
    if (fromSource >= MAX_CONNECTIONS_PER_SOURCE) return this.#drop('too-many-connections-from-source');
    if (token.length > 0 && this.#retryMode !== 'never') {
      const odcid = this.#openRetryToken(now, path, token, dcid);
      if (odcid !== undefined) {
        // The address is proved: only its own handshakes count against it (a spoofer cannot add to them).
        if (validatedFromSource >= MAX_HANDSHAKES_PER_SOURCE) return this.#drop('too-many-handshakes-from-source');
        return this.#accept(now, path, data, dcid, scid, handshaking, odcid);
      }
      // RFC 9000 §8.1.3: an invalid token from a Retry → drop (or INVALID_TOKEN): we drop when we
      // Retry everyone. Otherwise it may be some other server's token, and the client goes on as
      // one that has not proved its address (§8.1.3: "SHOULD proceed as if ... no token").
      if (this.#retryMode === 'always') return this.#drop('invalid-token');
    }
    const busy = handshaking >= this.#retryThreshold || unvalidatedFromSource >= MAX_HANDSHAKES_PER_SOURCE;
    // RFC 9000 §8.1.2: validate the address with a Retry before committing state to it.
    if (this.#retryMode === 'always' || (this.#retryMode === 'auto' && busy)) return this.#sendRetry(now, path, dcid, scid);
    if (unvalidatedFromSource >= MAX_HANDSHAKES_PER_SOURCE) return this.#drop('too-many-handshakes-from-source');
    this.#accept(now, path, data, dcid, scid, handshaking);
  }

  /** RFC 9000 §17.2.5: a Retry with a token binding the client's address, original DCID and the Retry's SCID. */
  #sendRetry(now: number, path: PathAddr, dcid: Uint8Array, scid: Uint8Array): void {
    const newScid = this.#provider.randomBytes(this.#cidLength);
    const token = this.#sealRetryToken(now, path, dcid, newScid);
    const body = new Uint8Array(7 + scid.length + newScid.length + token.length);
    let p = 0;
    body[p++] = 0xf0 | (this.#provider.randomBytes(1)[0]! & 0x0f);
    new DataView(body.buffer).setUint32(p, QUIC_V1);
    p += 4;
    body[p++] = scid.length;
    body.set(scid, p);
    p += scid.length;
    body[p++] = newScid.length;
    body.set(newScid, p);
    p += newScid.length;
    body.set(token, p);
    const tag = retryIntegrityTag(this.#provider, dcid, body);
    const out = new Uint8Array(body.length + tag.length);
    out.set(body);
    out.set(tag, body.length);
    this.#stats.retries++;
    this.#stateless.push({ path, data: out });
  }

  /**
   * Token = nonce[12] ‖ AES-GCM(time ‖ odcid, aad = path key ‖ Retry SCID). The Retry's SCID
   * is the only DCID the token is good for (the client's next Initial must use it, RFC 9000
   * §17.2.5.2), so one token cannot open connections under other DCIDs.
   */
  #sealRetryToken(now: number, path: PathAddr, odcid: Uint8Array, retryScid: Uint8Array): Uint8Array {
    const nonce = this.#provider.randomBytes(12);
    const plain = new Uint8Array(8 + odcid.length);
    new DataView(plain.buffer).setFloat64(0, now);
    plain.set(odcid, 8);
    const sealed = this.#provider.aead('aes-128-gcm', this.#tokenKey).seal(nonce, this.#tokenAad(path, retryScid), plain);
    const out = new Uint8Array(12 + sealed.length);
    out.set(nonce);
    out.set(sealed, 12);
    return out;
  }

  #tokenAad(path: PathAddr, retryScid: Uint8Array): Uint8Array {
    const key = new TextEncoder().encode(path.key);
    const aad = new Uint8Array(key.length + 1 + retryScid.length);
    aad.set(key);
    aad[key.length] = retryScid.length;
    aad.set(retryScid, key.length + 1);
    return aad;
  }

  /** The original DCID a token from our Retry carries, if it is genuine, fresh, from `path` and used with the Retry's SCID as `dcid`. */
  #openRetryToken(now: number, path: PathAddr, token: Uint8Array, dcid: Uint8Array): Uint8Array | undefined {
    if (token.length < 12 + 16 + 8 + 8 || token.length > 12 + 16 + 8 + 20) return undefined;
    const plain = this.#provider.aead('aes-128-gcm', this.#tokenKey).open(token.subarray(0, 12), this.#tokenAad(path, dcid), token.subarray(12));
    if (plain === null) return undefined;
    const issued = new DataView(plain.buffer, plain.byteOffset).getFloat64(0);
    if (!(now - issued >= 0 && now - issued < RETRY_TOKEN_LIFETIME)) return undefined;
    return plain.slice(8);
  }

  #accept(now: number, path: PathAddr, data: Uint8Array, dcid: Uint8Array, scid: Uint8Array, handshaking: number, retriedFrom?: Uint8Array): void {
    if (this.#connections.length >= MAX_CONNECTIONS) return this.#drop('too-many-connections');
    // Only a packet that decrypts with the Initial keys earns state (as quinn does): garbage
    // with a valid-looking header must not occupy a handshake slot.
    const keys = this.#initialDecrypts(data, dcid);
    if (keys === undefined) return this.#drop('undecryptable-initial');
    if (handshaking >= MAX_HANDSHAKING) return this.#drop('too-many-handshakes');
    const connection = new Connection({
      side: 'server',
      provider: this.#provider,
      settings: this.#settings,
      host: this,
      originalDcid: dcid.slice(),
      peerCid: scid.slice(),
      ...(retriedFrom ? { retriedFrom } : {}),
      ...(this.#directAddresses ? { directAddresses: this.#directAddresses() } : {}),
      // n0 NAT traversal: the addresses a client reaches out from are probed through these.
      ...(this.#resolvePath ? { resolvePath: this.#resolvePath } : {}),
      initialKeys: keys,
      path,
      now,
      cidLength: this.#cidLength,
      tls: (params) => {
        const session: TlsServerSession = new TlsServerSession({
          provider: this.#provider,
          ...this.#tlsCredentials('server', () => session.serverName),
          alpnProtocols: this.#alpns,
          transportParameters: this.#encodeParams(params),
          ...(this.#cipherSuites ? { cipherSuites: this.#cipherSuites } : {}),
          ...(this.#keyLog ? { keyLog: this.#keyLog } : {}),
        });
        return session;
      },
    });
    this.#connections.push(connection);
    this.#stats.connections++;
    this.#deliver(connection, now, path, data);
    if (connection.state === 'closed') return;
    this.#incoming.push(connection);
  }

  /** Does the first packet of `data` open with the client's Initial keys for `dcid`? */
  /** The Initial keys for `dcid` if the datagram's first packet opens with them. */
  #initialDecrypts(data: Uint8Array, dcid: Uint8Array): DirectionalKeys | undefined {
    let header;
    try {
      header = parseHeader(data, 0, this.#cidLength);
    } catch {
      return undefined;
    }
    if (header.form !== 'long' || header.type !== 'initial') return undefined;
    const both = initialKeys(this.#provider, dcid, 'server');
    const keys = both.remote;
    const packet = data.slice(header.start, header.end);
    const pnOffset = header.pnOffset - header.start;
    const hp = unprotectHeader(packet, pnOffset, keys.header);
    if (hp === undefined) return undefined;
    const pn = decodePacketNumber(-1, hp.truncatedPn, hp.pnLength * 8);
    return keys.open(pn, packet.subarray(0, pnOffset + hp.pnLength), packet.subarray(pnOffset + hp.pnLength)) !== null ? both : undefined;
  }

  #rateLimit(window: { start: number; count: number }, now: number, max: number): boolean {
    if (now - window.start >= 1_000_000) {
      window.start = now;
      window.count = 0;
    }
    if (window.count >= max) return false;
    window.count++;
    return true;
  }

  #maybeVersionNegotiation(now: number, path: PathAddr, data: Uint8Array, err: UnsupportedVersionError): void {
    // RFC 9000 §6.1: only for datagrams big enough to start a connection; never for VN itself.
    if (data.length < 1200 || err.version === 0) return this.#drop('unsupported-version');
    if (!this.#rateLimit(this.#vnWindow, now, MAX_VERSION_NEGOTIATIONS_PER_SECOND)) return this.#drop('vn-rate-limited');
    const out = new Uint8Array(7 + err.dcid.length + err.scid.length + 8);
    let p = 0;
    out[p++] = 0x80 | (this.#provider.randomBytes(1)[0]! & 0x7f);
    p += 4; // version 0
    // RFC 9000 §17.2.1: echo the client's SCID as DCID and its DCID as SCID.
    out[p++] = err.scid.length;
    out.set(err.scid, p);
    p += err.scid.length;
    out[p++] = err.dcid.length;
    out.set(err.dcid, p);
    p += err.dcid.length;
    // Supported: v1, plus a reserved GREASE version 0x?a?a?a?a (RFC 9000 §6.3).
    new DataView(out.buffer).setUint32(p, QUIC_V1);
    new DataView(out.buffer).setUint32(p + 4, 0x1a2a3a4a);
    this.#stats.versionNegotiations++;
    this.#stateless.push({ path, data: out.subarray(0, p + 8) });
  }

  #maybeStatelessReset(now: number, path: PathAddr, data: Uint8Array): void {
    // RFC 9000 §10.3: smaller than the packet that prompted it (no loops), at least 21 bytes,
    // and not three times larger; rate-limited (§10.3.3).
    if (data.length <= 21 + 1) return this.#drop('unknown-short');
    if (!this.#rateLimit(this.#resetWindow, now, MAX_STATELESS_RESETS_PER_SECOND)) return this.#drop('reset-rate-limited');
    const size = Math.min(data.length - 1, 43);
    const out = this.#provider.randomBytes(size);
    out[0] = 0x40 | (out[0]! & 0x3f);
    out.set(this.resetToken(data.subarray(1, 1 + this.#cidLength)), size - 16);
    this.#stats.statelessResets++;
    this.#stateless.push({ path, data: out });
  }

  // ---- output and timers

  /**
   * The next datagram to send, from any connection, or undefined. Connections take turns
   * (round-robin) with a quantum of {@link TRANSMIT_QUANTUM} datagrams: a busy connection next
   * to idle ones is not made to poll each of them between two of its datagrams.
   * `handshakeOnly`: only from connections with a handshake flight to send (and stateless
   * answers), for the driver to send those before the application reacts to events.
   */
  pollTransmit(now: number, handshakeOnly = false): Transmit | undefined {
    this.#now = now;
    const s = this.#stateless.shift();
    if (s) return s;
    const n = this.#connections.length;
    for (let i = 0; i < n; i++) {
      const idx = (this.#cursor + i) % n;
      const c = this.#connections[idx]!;
      if (!c.mayTransmit || (handshakeOnly && !c.hasHandshakeData)) continue;
      let t: Transmit | undefined;
      try {
        t = c.pollTransmit(now);
      } catch (err) {
        // A bug: that connection closes (INTERNAL_ERROR) and may still send its CONNECTION_CLOSE.
        c.failInternal(now, err);
        t = this.#guard(c, now, (x) => x.pollTransmit(now));
      }
      if (t) {
        // Its turn starts now if the connections before it had nothing; it ends after the quantum.
        this.#turn = i > 0 ? 1 : this.#turn + 1;
        this.#cursor = idx;
        if (this.#turn >= TRANSMIT_QUANTUM) {
          this.#cursor = (idx + 1) % n;
          this.#turn = 0;
        }
        return t;
      }
    }
    return undefined;
  }

  /** The earliest deadline of any connection. */
  pollTimeout(): number | undefined {
    let t: number | undefined;
    for (let i = 0; i < this.#connections.length; i++) {
      const c = this.#connections[i]!;
      let d: number | undefined;
      try {
        d = c.pollTimeout();
      } catch (err) {
        c.failInternal(this.#now, err);
        d = this.#guard(c, this.#now, (x) => x.pollTimeout());
      }
      if (d !== undefined && (t === undefined || d < t)) t = d;
    }
    return t;
  }

  /** Run due timers; forget closed connections. */
  handleTimeout(now: number): void {
    this.#now = now;
    for (const c of this.#connections) {
      try {
        const d = c.pollTimeout();
        if (d !== undefined && d <= now) c.handleTimeout(now);
      } catch (err) {
        c.failInternal(now, err);
      }
    }
    this.#reap();
  }

  #reap(): void {
    for (let i = this.#connections.length - 1; i >= 0; i--) {
      const c = this.#connections[i]!;
      if (c.isClosed) {
        this.#stats.internalErrors += c.internalErrors;
        this.#connections.splice(i, 1);
        for (const cid of c.localCids) this.#byCid.delete(cidKey(cid));
      }
    }
  }
}
