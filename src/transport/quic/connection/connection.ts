/**
 * A QUIC v1 connection (RFC 9000, RFC 9001, RFC 9002), sans-IO.
 *
 * Inputs are `handle*` calls (a datagram routed here by the endpoint, a timeout) and
 * application commands (stream writes, close); outputs are drained with `poll*`. After any
 * input or command the driver drains, in order: {@link Connection.pollTransmit} until it
 * returns undefined, then {@link Connection.pollTimeout}, then {@link Connection.pollEvent}
 * (quinn's order). `now` is a monotonic time in microseconds supplied by the caller; the
 * core never reads a clock, opens a socket or starts a timer.
 *
 * This file is the connection's face: the public API, packets in (header, decryption, key
 * phase, duplicate detection, frame dispatch, acknowledgment bookkeeping) and the timers. Its
 * state and the parts it drives are in `core.ts` (which lists them); further concerns are
 * packet-number spaces (`spaces.ts`), RTT and congestion control per path (`recovery.ts`),
 * connection IDs (`cid-state.ts`, `path-cids.ts`), streams and flow control
 * (`streams-state.ts`), datagrams (`datagrams.ts`), key updates (`key-update.ts`), multipath
 * negotiation (`multipath.ts`), NAT traversal (`nat-traversal.ts`) and closing (`close.ts`).
 *
 * @module
 */
import type { CryptoProvider } from '../../crypto/provider.ts';
import { equalBytes } from '../../../util/bytes.ts';
import type { ConnectionSettings } from '../config.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { MAX_EARLY_PACKETS } from '../limits.ts';
import { PacketKeys, decodePacketNumber, unprotectHeader, type DirectionalKeys } from '../protection/packet-keys.ts';
import { type CryptoSession } from '../tls/index.ts';
import { MAX_CID_LENGTH, parseHeader, type PacketHeader } from '../wire/header.ts';
import { DecodeError } from '../../../util/errors.ts';
import { type DirectAddress, type TransportParameters } from '../wire/transport-params.ts';
import { type CidHost } from './cid-state.ts';
import { applicationClose } from './close.ts';
import { dispatchFrames, type FrameHandlers } from './frame-dispatch.ts';
import { CHALLENGE_SENDS, type PathState } from './paths.ts';
import { PacketSpace, SPACE_APP, SPACE_HANDSHAKE, SPACE_INITIAL, type SpaceId } from './spaces.ts';
import type { Dir } from './streams.ts';
import { ConnectionError, type ConnectionEvent, type ConnectionStats, type PathAddr, type PathInfo, type Transmit } from './types.ts';
import { ConnectionCore, type State } from './core.ts';
import { frameHandlers } from './frame-handlers.ts';

/** What the endpoint does for a connection: CID routing and stateless-reset tokens. */
export interface ConnectionHost extends CidHost<Connection> {
  /** Route datagrams for `cid` to this connection. */
  addCid(cid: Uint8Array, connection: Connection): void;
  /** Stop routing `cid`. */
  removeCid(cid: Uint8Array): void;
  /** The stateless-reset token this endpoint uses for `cid` (RFC 9000 §10.3.2). */
  resetToken(cid: Uint8Array): Uint8Array;
  /**
   * The peer's reset token for the connection ID we now send with changed (RFC 9000 §10.3.1:
   * a datagram routed to no connection is checked against these).
   */
  setPeerResetToken(connection: Connection, token: Uint8Array | undefined): void;
}

export interface ConnectionOptions {
  readonly side: 'client' | 'server';
  readonly provider: CryptoProvider;
  readonly settings: ConnectionSettings;
  readonly host: ConnectionHost;
  /** Builds the TLS session once our transport parameters are known (they carry our CIDs). */
  readonly tls: (transportParameters: TransportParameters) => CryptoSession;
  /** Client: the random DCID of its first Initial. Server: the client's DCID. */
  readonly originalDcid: Uint8Array;
  /** Server: the client's SCID from its first Initial. */
  readonly peerCid?: Uint8Array;
  /**
   * Server, after a Retry: the client's first DCID (carried in the token). `originalDcid` is
   * then the DCID the client used after the Retry (our Retry's SCID), which keys Initial
   * protection (RFC 9001 §5.2) and becomes retry_source_connection_id (RFC 9000 §7.3).
   */
  readonly retriedFrom?: Uint8Array;
  readonly path: PathAddr;
  /**
   * Client: further paths to the same server (other addresses, relays). Until the server
   * answers, every datagram also goes to each of them; the path the first answer arrives on
   * becomes the connection's path (iroh-wire §3.5).
   */
  readonly alternativePaths?: readonly PathAddr[];
  /**
   * Our direct addresses. Server: sent in the sdnet_direct_addresses transport parameter (the
   * client may move the connection to one of them; undefined: the parameter is not sent) and as
   * n0 ADD_ADDRESS frames. Client: announced in n0 REACH_OUT rounds.
   */
  readonly directAddresses?: readonly DirectAddress[];
  /**
   * Client: turns a direct address the server advertised into a path we can send on, or
   * undefined when we cannot reach it (no socket of that family, our own address).
   */
  readonly resolvePath?: (address: DirectAddress) => PathAddr | undefined;
  /** Server: the Initial keys, if the endpoint already derived them (to check the first packet). */
  readonly initialKeys?: DirectionalKeys;
  readonly now: number;
  /** Length of the connection IDs this endpoint issues. */
  readonly cidLength: number;
}

/** The earlier of `t` and deadline `x` (0 or less: no deadline). */
function earliest(t: number, x: number): number {
  return x > 0 && x < t ? x : t;
}

/** The earlier of `t` and a path's validation timers. */
function challengeTimers(t: number, p: PathState): number {
  if (!p.challenge) return t;
  t = earliest(t, p.challengeDeadline);
  return p.challengeSends < CHALLENGE_SENDS ? earliest(t, p.challengeResendAt) : t;
}

export class Connection {
  /** Unexpected exceptions turned into INTERNAL_ERROR closes (should stay 0). */
  internalErrors = 0;
  /** The state the connection's parts share, and the parts (core.ts). */
  readonly #c: ConnectionCore;
  readonly #frameHandlers: FrameHandlers;

  /**
   * Whether the endpoint has to poll this connection for datagrams. Its state changes only
   * through an input (datagram, timeout) or a command of the application, and each of them
   * sets this; a poll that finds nothing to send clears it. A server with many quiet (or
   * draining) connections thus polls only the ones something happened to (issue 11 item 8).
   */
  #mayTransmit = true;
  /** {@link pollTimeout}'s answer, valid until the next input, command or poll. */
  #timeout: number | undefined;
  #timeoutValid = false;

  constructor(options: ConnectionOptions) {
    this.#c = new ConnectionCore(options, this);
    this.#frameHandlers = frameHandlers(this.#c);
  }

  /** Every input and command may create something to send and move a deadline. */
  #touch(): void {
    this.#mayTransmit = true;
    this.#timeoutValid = false;
  }

  /** False while nothing happened since a poll found nothing to send: polling would return undefined. */
  get mayTransmit(): boolean {
    return this.#mayTransmit;
  }

  /**
   * Handshake data (an Initial or Handshake flight) waits to be sent: the peer cannot go on
   * without it, so the driver sends it before letting the application react to events.
   */
  get hasHandshakeData(): boolean {
    return this.#mayTransmit && (this.#c.cryptoUnsent(SPACE_INITIAL) || this.#c.cryptoUnsent(SPACE_HANDSHAKE));
  }

  get side(): 'client' | 'server' {
    return this.#c.side;
  }

  /** Client: the random DCID of its first Initial. Server: the client's DCID (after a Retry, the Retry's SCID). */
  get originalDcid(): Uint8Array {
    return this.#c.originalDcid;
  }

  // ================================================================== public API

  /** Where the connection is in its life (RFC 9000 §10). */
  get state(): State {
    return this.#c.state;
  }

  /**
   * The address the peer last reported seeing our packets come from (QUIC address discovery,
   * with `addressDiscovery` 1 or 2 and a peer that provides observations), or undefined.
   */
  get observedAddress(): { readonly ip: Uint8Array; readonly port: number } | undefined {
    return this.#c.observed === undefined ? undefined : { ip: this.#c.observed.ip, port: this.#c.observed.port };
  }

  /** True once the handshake completed (until closing). */
  get isEstablished(): boolean {
    return this.#c.state === 'established';
  }

  /** True once nothing more is sent or processed. */
  get isClosed(): boolean {
    return this.#c.state === 'closed';
  }

  /** The error the connection closed with, once closing. */
  get closeError(): ConnectionError | undefined {
    return this.#c.close.error;
  }

  /** The handshake is confirmed (RFC 9001 §4.1.2). */
  get handshakeConfirmed(): boolean {
    return this.#c.handshakeConfirmed;
  }

  /** Server: the client proved its address (a Retry token, a Handshake packet, RFC 9000 §8.1). */
  get addressValidated(): boolean {
    return this.#c.addressValidated;
  }

  /** The negotiated ALPN protocol. */
  get alpn(): Uint8Array | undefined {
    return this.#c.tls.alpn;
  }

  /** The peer's authenticated Ed25519 public key (32 bytes), after the handshake. */
  get peerPublicKey(): Uint8Array | undefined {
    return this.#c.tls.isHandshaking ? undefined : this.#c.tls.peerPublicKey;
  }

  /** The peer's X.509 certificates (DER, leaf first) with X.509 credentials; empty with raw public keys. */
  get peerCertificates(): readonly Uint8Array[] {
    return this.#c.tls.isHandshaking ? [] : this.#c.tls.peerCertificates;
  }

  /** RFC 8446 §7.5 keying material of this connection's TLS session (undefined while handshaking). */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array | undefined {
    return this.#c.tls.exportKeyingMaterial(label, context, length);
  }

  /** The path datagrams currently go to. */
  get path(): PathAddr {
    return this.#c.path.addr;
  }

  /** Every path the connection knows: the active one first, then the candidates. */
  paths(): PathInfo[] {
    const info = (p: PathState, active: boolean): PathInfo => ({
      addr: p.addr,
      relayed: p.addr.relayed === true,
      validated: p.validated,
      status: active ? 'active' : 'candidate',
      rttMs: active ? this.#c.recovery.rtt.smoothed / 1000 : undefined,
      bytesSent: p.bytesSent,
      bytesReceived: p.bytesReceived,
    });
    if (this.#c.multipath.paths.size > 1) {
      // Multipath: every live path with its id and its own RTT, the one we send on first.
      const out: PathInfo[] = [];
      for (const id of [this.#c.tx, ...[...this.#c.multipath.paths.keys()].filter((k) => k !== this.#c.tx)]) {
        const rec = this.#c.mp(id)!;
        if (rec.abandoned) continue;
        const st = rec.state;
        out.push({
          id,
          addr: st.addr,
          relayed: st.addr.relayed === true,
          validated: st.validated,
          status: id === this.#c.tx ? 'active' : 'candidate',
          rttMs: rec.recovery.rtt.hasSample ? rec.recovery.rtt.smoothed / 1000 : undefined,
          bytesSent: st.bytesSent,
          bytesReceived: st.bytesReceived,
        });
      }
      return out;
    }
    return [info(this.#c.path, true), ...[...this.#c.otherPaths.values()].map((p) => info(p, false))];
  }

  /** Connection IDs this connection is reachable by (for the endpoint's bookkeeping). */
  get localCids(): Uint8Array[] {
    return [...this.#c.cids.local.values()].map((c) => c.cid);
  }

  /** Largest DATAGRAM payload the peer accepts now (0 = not supported). */
  get maxDatagramSize(): number {
    const peer = this.#c.peerParams?.maxDatagramFrameSize ?? 0;
    if (peer === 0) return 0;
    // One DATAGRAM frame in one 1-RTT packet: short header + tag + frame header.
    const fit = this.#c.path.mtu - (1 + this.#c.cids.active.cid.length + 4 + 16) - 3;
    return Math.max(0, Math.min(peer - 3, fit));
  }

  /** Counters and the current path's RTT, congestion window and MTU. */
  stats(): ConnectionStats {
    const r = this.#c.recovery;
    return {
      rtt: r.rtt.smoothed / 1000,
      minRtt: (Number.isFinite(r.rtt.min) ? r.rtt.min : r.rtt.smoothed) / 1000,
      cwnd: Math.round(r.cc.window),
      bytesInFlight: r.bytesInFlight,
      mtu: this.#c.path.mtu,
      packetsSent: this.#c.packetsSent,
      packetsReceived: this.#c.packetsReceived,
      bytesSent: this.#c.bytesSent,
      bytesReceived: this.#c.bytesReceived,
      lostPackets: this.#c.lost,
      congestionEvents: r.congestionEvents,
      keyUpdates: this.#c.keys.updates,
      pathChanges: this.#c.pathChanges,
      relayed: this.#c.path.addr.relayed === true,
      multipath: this.#c.multipath.negotiated,
    };
  }

  /** The next event (connected, stream and path events, closed), or undefined. */
  pollEvent(): ConnectionEvent | undefined {
    return this.#c.events.shift();
  }

  // ---- streams (streams-state.ts)

  /** Open a stream; undefined if the peer's stream limit is reached (a STREAMS_BLOCKED is queued). */
  openStream(dir: Dir): number | undefined {
    this.#touch();
    if (this.#c.state !== 'established' && this.#c.state !== 'handshaking') return undefined;
    return this.#c.streams.openStream(dir);
  }

  /** Streams of `dir` we may still open now. */
  availableStreams(dir: Dir): number {
    return this.#c.streams.availableStreams(dir);
  }

  /**
   * Queue bytes on a stream. Returns how many were accepted (limited by the stream's send
   * buffer); 0 means wait for a 'stream-writable' event.
   *
   * @throws {Error} if the stream cannot be written (unknown, receive-only, finished, reset)
   */
  writeStream(id: number, data: Uint8Array): number {
    this.#touch();
    return this.#c.streams.writeStream(id, data);
  }

  /** Bytes that {@link writeStream} would accept now. */
  writableBytes(id: number): number {
    return this.#c.streams.writableBytes(id);
  }

  /** Mark the end of the stream (FIN after the queued bytes). */
  finishStream(id: number): void {
    this.#touch();
    this.#c.streams.finishStream(id);
  }

  /** Abandon sending (RESET_STREAM with `code`, RFC 9000 §3.1). */
  resetStream(id: number, code: number): void {
    this.#touch();
    this.#c.streams.resetStream(id, code);
  }

  /** Ask the peer to stop sending (STOP_SENDING with `code`, RFC 9000 §3.5). */
  stopSending(id: number, code: number): void {
    this.#touch();
    this.#c.streams.stopSending(id, code);
  }

  /**
   * Read from a stream: data, the end (fin), or a reset code. `data` is undefined when
   * nothing is available yet.
   */
  readStream(id: number, max = Infinity): { data?: Uint8Array; fin: boolean; resetCode?: number } {
    this.#touch();
    return this.#c.streams.readStream(id, max);
  }

  /** Is there something to read (data, end or reset) on the stream? */
  isReadable(id: number): boolean {
    return this.#c.streams.isReadable(id);
  }

  /** The peer's STOP_SENDING code for a stream, if any. */
  stopCode(id: number): number | undefined {
    return this.#c.streams.stopCode(id);
  }

  // ---- datagrams (RFC 9221)

  /** Queue an unreliable datagram. False if it is too large or the queue is full. */
  sendDatagram(data: Uint8Array): boolean {
    this.#touch();
    if (data.length > this.maxDatagramSize) return false;
    return this.#c.datagrams.send(data);
  }

  /** The next received datagram. */
  readDatagram(): Uint8Array | undefined {
    this.#touch();
    return this.#c.datagrams.read();
  }

  // ---- close

  /** Close with an application error code and reason (RFC 9000 §10.2). */
  close(now: number, code: number, reason = ''): void {
    this.#touch();
    if (this.#c.state === 'closing' || this.#c.state === 'draining' || this.#c.state === 'closed' || this.#c.closeAfterFlight) return;
    const c = applicationClose(code, reason);
    // The client is established before the datagram with its Finished is built; the driver
    // sends that flight before it tells the application, but a flight the congestion window
    // or a custom driver held back must still leave before a close, or the peer sees a
    // handshake aborted instead of our close code (test/sim/basic.test.ts).
    if (this.#c.finishedUnsent) {
      this.#c.closeAfterFlight = c;
      return;
    }
    this.#c.enterClosing(now, c.frame, c.error);
  }

  /**
   * Update the 1-RTT keys (RFC 9001 §6.1): now if allowed, else as soon as a packet of the
   * current phase has been acknowledged (a PING makes sure one is). False only before the
   * handshake is confirmed or after close.
   */
  initiateKeyUpdate(): boolean {
    this.#touch();
    return this.#c.initiateKeyUpdate();
  }

  /** Send a PATH_CHALLENGE on `path` (RFC 9000 §8.2); 'path-validated' follows on success. */
  probePath(now: number, path: PathAddr): void {
    this.#touch();
    if (this.#c.state !== 'established') return;
    const p = path.key === this.#c.path.addr.key ? this.#c.path : this.#c.paths.otherPath(path, true, false);
    this.#c.paths.startChallenge(now, p);
  }

  /**
   * Move the connection to `path` (client-initiated migration, RFC 9000 §9.2): new packets go
   * there with a fresh connection ID, validated with PATH_CHALLENGE.
   */
  migrate(now: number, path: PathAddr): void {
    this.#touch();
    if (this.#c.state !== 'established' || path.key === this.#c.path.addr.key) return;
    const p = this.#c.paths.otherPath(path, true, false);
    this.#c.otherPaths.delete(path.key);
    this.#c.otherPaths.set(this.#c.path.addr.key, this.#c.path);
    this.#c.paths.switchPath(now, p, !p.validated, 'migrate');
  }

  /**
   * Client: another direct path to the server, tried while the connection runs over a relay
   * (only with sdnet peers, which advertise that they follow migrations).
   */
  addCandidatePath(now: number, path: PathAddr): void {
    this.#touch();
    this.#c.paths.addCandidate(now, path, false);
  }

  /**
   * An unexpected exception escaped one of this connection's handlers (a bug, not peer input:
   * peer input closes with its RFC code). The endpoint calls this and goes on serving the
   * others: the connection closes with INTERNAL_ERROR, or, failing again while closing, ends
   * at once without another packet.
   */
  failInternal(now: number, err: unknown): void {
    this.#touch();
    this.internalErrors++;
    try {
      if (this.#c.state === 'handshaking' || this.#c.state === 'established') {
        this.#c.closeWithTransportError(now, new TransportError(TransportErrorCode.INTERNAL_ERROR, `internal error: ${(err as Error)?.message ?? String(err)}`));
        return;
      }
      if (this.#c.state !== 'closed') this.#c.enterClosed(now);
    } catch {
      this.#c.state = 'closed';
    }
  }

  // ================================================================== input

  /** A datagram for this connection arrived on `path`. */
  handleDatagram(now: number, path: PathAddr, data: Uint8Array): void {
    this.#touch();
    if (this.#c.state === 'closed' || this.#c.state === 'draining') return;
    if (this.#c.state === 'closing') {
      // RFC 9000 §8.1, §9.3: bytes from the path still raise what we may send to it unvalidated.
      if (path.key === this.#c.path.addr.key) this.#c.path.bytesReceived += data.length;
      this.#c.close.onDatagram();
      return;
    }
    const onPath = path.key === this.#c.path.addr.key ? this.#c.path : this.#c.otherPaths.get(path.key);
    // Before the handshake completes the server keeps to the path it first heard from; copies of
    // the client's Initial arriving over other paths are dropped (iroh-wire §3.5).
    if (onPath === undefined && this.side === 'server' && this.#c.state === 'handshaking') return;
    // What arrives on a path bounds what we may send there (RFC 9000 §8.1, §9.3). A path we did
    // not know gets state only once a packet of the datagram authenticates (#handlePacket):
    // spoofed garbage must not fill the slots of real paths.
    if (onPath !== undefined) onPath.bytesReceived += data.length;
    this.#unknownPathBytes = onPath === undefined ? data.length : 0;
    this.#c.now = now;
    this.#c.bytesReceived += data.length;
    let offset = 0;
    let first = true;
    let firstDcid: Uint8Array | undefined;
    while (offset < data.length) {
      let header: PacketHeader;
      try {
        header = parseHeader(data, offset, this.#c.cids.localLength);
      } catch {
        return; // RFC 9000 §12.2: an unparseable packet ends processing of the datagram.
      }
      // RFC 9000 §12.2: coalesced packets with another DCID than the first SHOULD be ignored.
      if (firstDcid === undefined) firstDcid = header.dcid;
      else if (!equalBytes(header.dcid, firstDcid)) return;
      const end = header.end;
      const packet = data.subarray(offset, end);
      this.#c.packetDcid = header.dcid;
      try {
        this.#handlePacket(now, path, header, packet, data, first, end === data.length);
      } catch (err) {
        // A peer's protocol violation closes with its RFC code; anything else is our bug, and
        // still only closes this connection (INTERNAL_ERROR) instead of escaping.
        this.#c.closeWithTransportError(now, err instanceof TransportError ? err : new TransportError(TransportErrorCode.INTERNAL_ERROR, `internal error: ${(err as Error)?.message ?? String(err)}`));
        if (!(err instanceof TransportError)) this.internalErrors++;
        return;
      }
      if (this.#c.gone()) return;
      first = false;
      offset = end;
    }
    while (this.#c.replayEarly.length > 0 && !this.#c.gone()) {
      const e = this.#c.replayEarly.shift()!;
      this.handleDatagram(now, e.path, e.data);
    }
    this.#c.loss.setLossTimer();
  }

  /** Bytes of the datagram being processed, when it came on a path we have no state for yet. */
  #unknownPathBytes = 0;
  /** Packets that failed authentication over the connection's lifetime (RFC 9001 §6.6). */
  #authFailures = 0;
  /** One packet of a datagram: header protection, decryption, duplicate check, frames, acknowledgment bookkeeping. */
  #handlePacket(now: number, path: PathAddr, header: PacketHeader, packet: Uint8Array, datagram: Uint8Array, firstInDatagram: boolean, last: boolean): void {
    if (header.form === 'version-negotiation') return this.#c.handshake.onVersionNegotiation(now, header.versions, firstInDatagram);
    if (header.form === 'long' && header.type === 'retry') return this.#c.handshake.onRetry(now, header, packet);
    if (header.form === 'long' && header.type === '0rtt') return; // we never accept 0-RTT
    // RFC 9000 §7.2: after the first valid server packet, a client discards packets with another SCID.
    if (header.form === 'long' && this.side === 'client' && this.#c.receivedFirstServerPacket && !equalBytes(header.scid, this.#c.peerInitialScid!)) return;
    const spaceId: SpaceId = header.form === 'short' ? SPACE_APP : header.type === 'initial' ? SPACE_INITIAL : SPACE_HANDSHAKE;
    const space = this.#c.spaces[spaceId];
    if (space.discarded) return;
    if (header.form === 'long' && this.side === 'client' && spaceId === SPACE_INITIAL && header.token.length > 0) {
      return; // RFC 9000 §17.2.2: a client drops Initials with a token.
    }
    // Keys not yet available — or, on a server, 1-RTT before the handshake completed, which
    // RFC 9001 §5.7 forbids processing — keep a few packets for later (reordering).
    if (space.keys === undefined || (spaceId === SPACE_APP && this.side === 'server' && this.#c.tls.isHandshaking)) {
      if (this.#c.earlyPackets.length < MAX_EARLY_PACKETS) this.#c.earlyPackets.push({ path, data: packet.slice() });
      return;
    }
    // The datagram buffer is ours (the socket hands over a fresh one), so header protection
    // is removed in place; it is restored below if the packet fails to authenticate.
    // multipath-21 §2: a 1-RTT packet's path is its DCID's path id, whatever its 4-tuple.
    const pathId = header.form === 'short' ? this.#c.pathCids.pathOf(header.dcid) : 0;
    let pnSpace: PacketSpace | undefined = space;
    if (pathId !== this.#c.tx) {
      const mp = this.#c.multipath;
      // Before negotiation (noq's early discard), on a path closed for good, or on a path only
      // the client may open: dropped.
      if (!mp.negotiated || mp.isClosed(pathId)) return;
      pnSpace = mp.paths.get(pathId)?.space;
      if (pnSpace === undefined && this.side === 'client') return;
    }
    const buf = packet;
    const pnOffset = header.pnOffset - header.start;
    const hp = unprotectHeader(buf, pnOffset, space.keys.remote.header);
    if (hp === undefined) return;
    const pn = decodePacketNumber(pnSpace?.largestReceived ?? -1, hp.truncatedPn, hp.pnLength * 8);
    const headerBytes = buf.subarray(0, pnOffset + hp.pnLength);
    const sealed = buf.subarray(headerBytes.length);
    let keys = space.keys.remote;
    let phaseChange = false;
    if (spaceId === SPACE_APP) {
      const phase = (buf[0]! >> 2) & 1;
      // The key phase is connection-wide (multipath-21 §2.5); which update a packet of another
      // path belongs to is judged without its packet number (another number space).
      const opened = pathId === this.#c.tx ? this.#c.keys.openKeys(space, phase, pn) : this.#c.keys.openKeysOffPath(space, phase);
      keys = opened.keys;
      phaseChange = opened.change;
    }
    const payload = keys.open(pn, headerBytes, sealed, pathId);
    if (payload === null) {
      // RFC 9000 §10.3.1: a datagram that does not authenticate may be a stateless reset.
      if (last && header.form === 'short' && this.#c.cids.isStatelessReset(datagram)) return this.#c.onStatelessReset(now);
      // RFC 9001 §6.6: count every packet that fails authentication, across all keys; beyond the
      // AEAD's integrity limit, close with AEAD_LIMIT_REACHED (and process nothing more).
      if (++this.#authFailures > this.#integrityLimit(keys)) throw new TransportError(TransportErrorCode.AEAD_LIMIT_REACHED, 'too many packets failed authentication');
      return;
    }
    // RFC 9000 §17.2 / §17.3.1: reserved bits must be 0 after removing protection.
    const reserved = header.form === 'long' ? buf[0]! & 0x0c : buf[0]! & 0x18;
    if (reserved !== 0) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'reserved header bits set');
    // RFC 9000 §12.3: a duplicate packet number MUST NOT be processed again (nor one below the
    // floor of what we still remember).
    if (pnSpace?.isDuplicate(pn)) return;
    if (pathId !== this.#c.tx) {
      const rec = this.#c.multipath.paths.get(pathId) ?? this.#c.paths.acceptPath(now, pathId, path);
      if (rec === undefined) return;
      pnSpace = rec.space;
      // What arrives on the path bounds what we send there before it is validated (RFC 9000 §8.1);
      // a short-header packet ends its datagram, so the datagram is counted once, here.
      if (rec.state.addr.key === path.key) rec.state.bytesReceived += datagram.length;
      this.#unknownPathBytes = 0;
    }
    if (this.#unknownPathBytes > 0) {
      // The first authenticated packet from a new path: now it gets state (and the datagram counts).
      this.#c.paths.otherPath(path, false, true).bytesReceived += this.#unknownPathBytes;
      this.#unknownPathBytes = 0;
    }
    const heard = pathId === this.#c.tx ? this.#c.path : this.#c.multipath.paths.get(pathId)?.state;
    if (heard !== undefined && heard.addr.key === path.key) heard.heardAt = now;
    if (phaseChange) this.#c.keys.onPeerUpdate(this.#c.spaces[SPACE_APP], pathId === this.#c.tx ? pn : this.#c.spaces[SPACE_APP].largestReceived + 1);
    this.#c.packetsReceived++;

    if (header.form === 'long') this.#c.handshake.onLongHeaderAccepted(header, path);
    // RFC 9000 §8.1: a Handshake packet from the client proves its address.
    if (this.side === 'server' && spaceId === SPACE_HANDSHAKE) {
      this.#c.addressValidated = true;
      this.#c.path.validated = true;
      // RFC 9001 §4.9.1: a server discards Initial keys on first processing a Handshake packet.
      this.#c.handshake.discardSpace(SPACE_INITIAL);
    }
    if (this.side === 'client' && spaceId !== SPACE_INITIAL) this.#c.peerCompletedAddressValidation = true;

    this.#c.rx.now = now;
    this.#c.rx.path = path;
    this.#c.rx.space = spaceId;
    this.#c.rx.pathId = pathId;
    dispatchFrames(payload, header.form === 'short' ? '1rtt' : header.type === 'handshake' ? 'handshake' : 'initial', this.#frameHandlers, this.#c.summary);
    if (this.#c.state === 'draining' || this.#c.state === 'closed') return;

    // Record for acknowledgment (in the packet's own path space).
    const wasLargest = pnSpace!.onReceived(pn, now, this.#c.summary.ackEliciting, spaceId !== SPACE_APP, this.#c.settings.maxAckDelay * 1000);
    this.#c.lastActivity = now;
    this.#c.resetIdleTimer(now);
    if (spaceId === SPACE_APP && wasLargest) {
      if (pathId === 0 && this.#c.tx === 0) this.#c.paths.onPathActivity(now, path);
      else this.#c.paths.onMpPathActivity(now, pathId, path, datagram.length);
    }
  }

  /** RFC 9001 §6.6: packets that may fail authentication before the connection must close. */
  #integrityLimit(keys: PacketKeys): number {
    // AES-GCM: 2^52; ChaCha20-Poly1305: 2^36.
    const aead = keys.suite.aead === 'chacha20-poly1305' ? 2 ** 36 : 2 ** 52;
    return Math.min(aead, this.#c.settings.maxAuthenticationFailures);
  }

  /** The endpoint matched a datagram to our peer's reset token (RFC 9000 §10.3.1). */
  handleStatelessReset(now: number): void {
    this.#touch();
    if (this.#c.state === 'established' || this.#c.state === 'handshaking' || this.#c.state === 'closing') this.#c.onStatelessReset(now);
  }

  /** The earliest time something must happen, or undefined. */
  pollTimeout(): number | undefined {
    if (!this.#timeoutValid) {
      this.#timeout = this.#nextTimeout();
      this.#timeoutValid = true;
    }
    return this.#timeout;
  }

  #nextTimeout(): number | undefined {
    if (this.#c.state === 'closed') return undefined;
    if (this.#c.state === 'closing' || this.#c.state === 'draining') return this.#c.close.deadline;
    // Called for every connection on every driver pass: no closure, no array (issue 11 item 8).
    let t = earliest(Infinity, this.#c.recovery.lossTimer);
    t = earliest(t, this.#c.idleDeadline);
    if (this.#c.state === 'handshaking') t = earliest(t, this.#c.handshakeDeadline);
    // An ACK already owed needs no timer: it leaves with the next datagram we may send. Its
    // past deadline would wake the driver for nothing while the anti-amplification limit
    // blocks sending (a blocked endpoint arms no timer it cannot serve, RFC 9002 §6.2.2.1).
    for (let i = 0; i < this.#c.spaces.length; i++) {
      const s = this.#c.spaces[i]!;
      if (!s.discarded && !s.ackPending && s.ackElicitingSinceAck > 0) t = earliest(t, s.ackDeadline);
    }
    t = earliest(t, this.#c.keepAliveAt);
    if (this.#c.pacingAt > 0) t = earliest(t, this.#c.pacingAt);
    t = earliest(t, this.#c.keys.discardAt);
    t = earliest(t, this.#c.mtuProbeAt);
    t = challengeTimers(t, this.#c.path);
    if (this.#c.otherPaths.size > 0) for (const p of this.#c.otherPaths.values()) t = challengeTimers(t, p);
    if (this.#c.managePaths) t = earliest(t, this.#c.paths.pathTimerAt());
    t = earliest(t, this.#c.cids.nextExpiry);
    if (this.#c.multipath.paths.size > 1) {
      for (const p of this.#c.multipath.paths.values()) {
        if (p.id === this.#c.tx) continue;
        const sp = p.space;
        if (!sp.ackPending && sp.ackElicitingSinceAck > 0) t = earliest(t, sp.ackDeadline);
        t = challengeTimers(t, p.state);
        if (p.abandoned) t = earliest(t, p.dropAt);
        else if (p.keepAliveAt > 0 && !p.pingPending) t = earliest(t, p.keepAliveAt);
      }
      t = earliest(t, this.#c.pathCids.nextExpiry);
    }
    if (this.#c.nat.probes.length > 0) t = earliest(t, this.#c.nat.nextProbeAt);
    return t === Infinity ? undefined : t;
  }

  /** Run whatever timers are due at `now` (safe to call early or spuriously). */
  handleTimeout(now: number): void {
    this.#touch();
    this.#c.now = now;
    if (this.#c.state === 'closed') return;
    if (this.#c.state === 'closing' || this.#c.state === 'draining') {
      if (now >= this.#c.close.deadline) this.#c.enterClosed(now);
      return;
    }
    if (this.#c.state === 'handshaking' && now >= this.#c.handshakeDeadline) {
      this.#c.close.error = new ConnectionError({ code: 'ERR_QUIC_HANDSHAKE_TIMEOUT', kind: 'handshake-timeout', remote: false, reason: '' });
      this.#c.enterClosed(now);
      return;
    }
    if (this.#c.idleDeadline > 0 && now >= this.#c.idleDeadline) {
      // RFC 9000 §10.1: idle timeout closes silently.
      this.#c.close.error = new ConnectionError({ code: 'ERR_QUIC_TIMED_OUT', kind: 'idle-timeout', remote: false, reason: '' });
      this.#c.enterClosed(now);
      return;
    }
    for (const s of this.#c.spaces) {
      if (s.ackElicitingSinceAck > 0 && s.ackDeadline <= now) s.ackPending = true;
    }
    if (this.#c.keepAliveAt > 0 && now >= this.#c.keepAliveAt) {
      this.#c.pingPending = true;
      this.#c.keepAliveAt = 0;
    }
    if (this.#c.keys.discardAt > 0 && now >= this.#c.keys.discardAt) {
      // RFC 9001 §6.5: old read keys are dropped some time (3 PTO) after an update.
      this.#c.keys.previousRemoteKeys = undefined;
      this.#c.keys.discardAt = 0;
    }
    this.#c.paths.runChallengeTimers(now);
    if (this.#c.multipath.paths.size > 1) this.#c.paths.runMultipathTimers(now);
    this.#c.paths.runPathTimers(now);
    this.#c.cids.expireRetired(now);
    if (this.#c.recovery.lossTimer > 0 && now >= this.#c.recovery.lossTimer) this.#c.loss.onLossTimer(now);
    if (this.#c.pacingAt > 0 && now >= this.#c.pacingAt) this.#c.pacingAt = 0;
    this.#c.loss.setLossTimer();
  }

  // ================================================================== output

  /** The next datagram to send, or undefined when there is nothing (more) to send now (transmit.ts). */
  pollTransmit(now: number): Transmit | undefined {
    // Sending moves deadlines (loss, idle, pacing) even when it finds nothing to send.
    this.#timeoutValid = false;
    const t = this.#c.out.pollTransmit(now);
    if (t === undefined) this.#mayTransmit = false;
    return t;
  }
}

/** Re-exported so the endpoint can check DCID lengths. */
export { MAX_CID_LENGTH, DecodeError };
