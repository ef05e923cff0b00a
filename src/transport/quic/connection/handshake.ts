/**
 * The handshake (RFC 9000 §7, RFC 9001 §4): CRYPTO frames in and out of the TLS session,
 * packet protection keys as TLS yields them, the peer's transport parameters checked and
 * applied, Retry and Version Negotiation on the client, handshake confirmation, and
 * discarding the Initial and Handshake spaces.
 *
 * @module
 */
import { equalBytes } from '../../../util/bytes.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { MAX_CRYPTO_BUFFER, MAX_CRYPTO_FRAGMENTS } from '../limits.ts';
import { PacketKeys, initialKeys } from '../protection/packet-keys.ts';
import { RETRY_TAG_LENGTH, verifyRetryIntegrity } from '../protection/retry.ts';
import { isProbeable } from '../address.ts';
import { TlsAlertError } from '../tls/index.ts';
import { FrameType } from '../wire/frames.ts';
import { QUIC_V1, type LongHeader } from '../wire/header.ts';
import { decodeTransportParameters } from '../wire/transport-params.ts';
import { LEVEL_OF, SPACE_APP, SPACE_HANDSHAKE, SPACE_INITIAL, type SpaceId } from './spaces.ts';
import { ConnectionError, type PathAddr } from './types.ts';
import type { ConnectionCore } from './core.ts';

export class Handshake {
  readonly c: ConnectionCore;

  constructor(c: ConnectionCore) {
    this.c = c;
  }

  // ---- CRYPTO and TLS (RFC 9001 §4)

  /** CRYPTO data of `spaceId` into TLS, in order, within the reassembly budgets (RFC 9000 §7.5). */
  onCrypto(now: number, offset: number, data: Uint8Array, spaceId: SpaceId, wireType: number): void {
    const space = this.c.spaces[spaceId];
    // RFC 9000 §7.5: buffering beyond our limit → CRYPTO_BUFFER_EXCEEDED.
    if (offset + data.length > space.cryptoRecv.readOffset + MAX_CRYPTO_BUFFER) {
      throw new TransportError(TransportErrorCode.CRYPTO_BUFFER_EXCEEDED, 'too much CRYPTO data ahead of the read offset', wireType);
    }
    space.cryptoRecv.insert(offset, data);
    // RFC 9000 §7.5: a fragmented flight is buffered only up to a budget (Initial CRYPTO is unauthenticated).
    if (space.cryptoRecv.fragmentCount > MAX_CRYPTO_FRAGMENTS || this.c.streams.recvBudget.exceeded) {
      throw new TransportError(TransportErrorCode.CRYPTO_BUFFER_EXCEEDED, 'CRYPTO data too fragmented', wireType);
    }
    for (let chunk = space.cryptoRecv.read(); chunk !== undefined; chunk = space.cryptoRecv.read()) {
      try {
        this.c.tls.handleHandshakeData(LEVEL_OF[spaceId]!, chunk);
      } catch (err) {
        if (err instanceof TlsAlertError) {
          throw Object.assign(new TransportError(err.quicErrorCode, err.message, FrameType.CRYPTO), { tlsCode: err.code });
        }
        throw err;
      }
    }
    this.pumpTls();
    this.#afterTls(now);
  }

  /** Move TLS output into CRYPTO send buffers and install new keys. */
  pumpTls(): void {
    for (;;) {
      const secrets = this.c.tls.pollSecrets();
      if (secrets !== undefined) {
        const local = PacketKeys.fromSecret(this.c.provider, secrets.suite, secrets.local);
        const remote = PacketKeys.fromSecret(this.c.provider, secrets.suite, secrets.remote);
        const space = this.c.spaces[secrets.level === 'handshake' ? SPACE_HANDSHAKE : SPACE_APP];
        space.keys = { local, remote };
        continue;
      }
      const out = this.c.tls.pollHandshakeData();
      if (out === undefined) break;
      const spaceId = out.level === 'initial' ? SPACE_INITIAL : out.level === 'handshake' ? SPACE_HANDSHAKE : SPACE_APP;
      this.c.spaces[spaceId].cryptoSend.write(out.data);
    }
  }

  /** After TLS progressed: the peer's parameters, the handshake's completion, packets held for later keys. */
  #afterTls(now: number): void {
    if (this.c.peerParams === undefined && this.c.tls.peerTransportParameters !== undefined) this.#applyPeerParams(this.c.tls.peerTransportParameters);
    if (this.c.state === 'handshaking' && !this.c.tls.isHandshaking) {
      this.c.state = 'established';
      this.c.multipath.onHandshakeComplete();
      this.c.events.push({ type: 'connected' });
      if (this.c.multipath.negotiated) this.c.multipath.paths.set(0, this.c.paths.newMpPath(0, this.c.spaces[SPACE_APP], this.c.recovery, this.c.path));
      // A client's own connection IDs wait until the datagram with its Finished, and then
      // whatever else we have to send (the first request), have left (transmit.ts): ~17 IDs,
      // with a random, an HMAC and two table entries each, plus their frames, were a fifth of
      // the time from the server's flight to our Finished (issue 11 item 8).
      if (this.c.side === 'client') this.c.ownCidsPending = true;
      else this.issueOwnCids();
      this.c.nat.onHandshakeComplete(this.c.multipath.negotiated);
      if (this.c.nat.active) {
        if (this.c.side === 'server') this.c.nat.advertise(this.c.localAddresses);
        else {
          // The client opens a path to each address the server adds (holepunch.md §1.7 b).
          this.c.managePaths = true;
          for (const d of this.c.dialed) this.c.paths.addCandidate(now, d, false);
          this.c.paths.startNatRound(now);
        }
      }
      if (this.c.side === 'server') {
        // RFC 9001 §4.1.2: the server's handshake is confirmed when it completes; it tells the client.
        this.c.handshakeDonePending = true;
        this.confirmHandshake(now);
      }
    }
    // Packets that arrived before they could be processed get another chance.
    if (this.c.earlyPackets.length > 0 && !this.c.replayingEarly) {
      this.c.replayingEarly = true;
      const early = this.c.earlyPackets.splice(0);
      for (const e of early) this.c.replayEarly.push(e);
      this.c.replayingEarly = false;
    }
  }

  /** Our connection IDs for path 0 and, with multipath, for every other path id the peer allows. */
  issueOwnCids(): void {
    this.c.ownCidsPending = false;
    this.c.issueCids();
    if (this.c.multipath.negotiated) this.c.paths.issuePathCids();
  }

  /** The peer's transport parameters, checked (RFC 9000 §7.3, §18.2) and applied. */
  #applyPeerParams(bytes: Uint8Array): void {
    const p = decodeTransportParameters(bytes, this.c.side === 'client' ? 'server' : 'client');
    // RFC 9000 §7.3: authenticate the connection IDs used during the handshake.
    const mismatch = (a: Uint8Array | undefined, b: Uint8Array | undefined) => (a === undefined) !== (b === undefined) || (a !== undefined && !equalBytes(a, b!));
    if (mismatch(p.initialSourceConnectionId, this.c.peerInitialScid)) {
      throw new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, 'initial_source_connection_id does not match');
    }
    if (this.c.side === 'client') {
      if (mismatch(p.originalDestinationConnectionId, this.c.originalDcid)) throw new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, 'original_destination_connection_id does not match');
      if (mismatch(p.retrySourceConnectionId, this.c.retrySourceCid)) throw new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, 'retry_source_connection_id does not match');
      if (p.statelessResetToken) this.c.cids.use({ ...this.c.cids.active, resetToken: p.statelessResetToken });
      this.c.cids.remote.set(0, this.c.cids.active);
    }
    this.c.multipath.onPeerParams(p, this.c.peerInitialScid?.length ?? 0);
    this.c.nat.onPeerParams(p);
    this.c.peerParams = p;
    if (this.c.side === 'client' && p.sdnetDirectAddresses !== undefined && !p.disableActiveMigration) {
      // An sdnet server: it follows RFC 9000 migrations, so we may upgrade and fall back.
      this.c.managePaths = true;
      for (const d of this.c.dialed) this.c.paths.addCandidate(this.c.now, d, false);
      for (const a of p.sdnetDirectAddresses) {
        // Whatever the peer says, no probe goes to an address no single host has (unspecified,
        // multicast, broadcast, reserved) or to port 0: we would be its reflector.
        if (!isProbeable(a)) continue;
        const path = this.c.resolvePath?.(a);
        if (path) this.c.paths.addCandidate(this.c.now, path, true);
      }
    }
    this.c.streams.applyPeerParams(p);
    this.c.peerAckDelayExponent = p.ackDelayExponent;
    this.c.peerMaxAckDelay = p.maxAckDelay * 1000;
    const ours = this.c.settings.maxIdleTimeout;
    // RFC 9000 §10.1: the effective idle timeout is the minimum of the non-zero advertised values.
    const idle = ours === 0 ? p.maxIdleTimeout : p.maxIdleTimeout === 0 ? ours : Math.min(ours, p.maxIdleTimeout);
    this.c.idleTimeout = idle * 1000;
    this.c.streams.applyPeerStreamCredit(p);
  }

  /** The handshake is confirmed (RFC 9001 §4.1.2): Initial and Handshake keys go, MTU discovery may start. */
  confirmHandshake(now: number): void {
    if (this.c.handshakeConfirmed) return;
    this.c.handshakeConfirmed = true;
    this.c.peerCompletedAddressValidation = true;
    // RFC 9001 §4.9.2: discard Handshake keys once the handshake is confirmed.
    this.discardSpace(SPACE_INITIAL);
    this.discardSpace(SPACE_HANDSHAKE);
    // The first probe waits one PTO: sent at once, it goes out with the first request and its
    // answer on a fresh connection and costs them a 1452-byte packet each way (measured: a
    // first echo 30-45 % slower on loopback).
    if (this.c.settings.mtuDiscovery) this.c.mtuProbeAt = now + this.c.recovery.rtt.pto(this.c.peerMaxAckDelay);
  }

  /** RFC 9002 §6.4: dropping a space removes its packets from flight without loss signals. */
  discardSpace(id: SpaceId): void {
    const space = this.c.spaces[id];
    if (space.discarded) return;
    for (const p of space.sent.values()) this.c.recovery.leaveFlight(p);
    space.sent.clear();
    space.ackElicitingInFlight = 0;
    space.lossTime = 0;
    space.keys = undefined;
    space.discarded = true;
    space.ackPending = false;
    space.ackElicitingSinceAck = 0;
    space.ackDeadline = Infinity;
    space.probes = 0;
    this.c.recovery.ptoCount = 0;
    // The server keeps routing the client's original DCID until the connection ends: a copy of
    // the first flight that arrives late over a slower path (a relay) must find this connection
    // and be dropped, not start a second one (iroh-wire §3.5).
  }

  // ---- the client: the server's first packet, Version Negotiation, Retry (RFC 9000 §6, §7.2, §17.2.5)

  /** Client: the first authenticated server packet fixes the path and the server's connection ID (RFC 9000 §7.2). */
  onLongHeaderAccepted(header: LongHeader, path: PathAddr): void {
    if (this.c.side === 'client' && !this.c.receivedFirstServerPacket) {
      this.c.receivedFirstServerPacket = true;
      // Dialled on several paths: keep to the one the server answered on.
      this.c.dialPaths = [];
      this.c.dialCopies = [];
      if (path.key !== this.c.path.addr.key) {
        const answered = this.c.otherPaths.get(path.key);
        if (answered) {
          this.c.otherPaths.delete(path.key);
          this.c.otherPaths.set(this.c.path.addr.key, this.c.path);
          this.c.path = answered;
        }
      }
      // The other direct paths did not answer first: they are candidates to probe later, not
      // validated paths. A relay stays as the path to fall back to.
      for (const [key, p] of this.c.otherPaths) {
        if (!p.addr.relayed) this.c.otherPaths.delete(key);
        else if (!this.c.path.addr.relayed) this.c.fallbackKey ??= key;
      }
      // RFC 9000 §7.2: switch to the server's chosen connection ID.
      this.c.peerInitialScid = header.scid;
      this.c.cids.setInitialRemote({ seq: 0, cid: header.scid, resetToken: undefined });
    }
  }

  /** Client: a Version Negotiation packet (RFC 9000 §6.2). */
  onVersionNegotiation(now: number, versions: readonly number[], firstInDatagram: boolean): void {
    // RFC 9000 §6.2: only a client that has not yet received another packet acts on it;
    // one listing our version (or arriving after other packets) is discarded.
    if (this.c.side !== 'client' || this.c.receivedFirstServerPacket || !firstInDatagram || versions.includes(QUIC_V1)) return;
    this.c.close.error = new ConnectionError({ code: 'ERR_QUIC_VERSION_MISMATCH', kind: 'version-mismatch', remote: true, reason: `server supports ${versions.map((v) => `0x${v.toString(16)}`).join(', ')}` });
    this.c.enterClosed(now);
  }

  /** Client: a Retry (RFC 9000 §17.2.5): new Initial keys and token, the first flight sent again. */
  onRetry(now: number, header: LongHeader, packet: Uint8Array): void {
    // RFC 9000 §17.2.5.2: a client accepts one Retry, before any other server packet, with a valid tag.
    if (this.c.side !== 'client' || this.c.receivedFirstServerPacket || this.c.retrySourceCid !== undefined) return;
    if (packet.length < RETRY_TAG_LENGTH) return;
    if (!verifyRetryIntegrity(this.c.provider, this.c.originalDcid, packet)) return;
    const tokenStart = header.pnOffset - header.start;
    const token = packet.subarray(tokenStart, packet.length - RETRY_TAG_LENGTH);
    if (token.length === 0 || equalBytes(header.scid, this.c.originalDcid)) return;
    this.c.retryToken = token.slice();
    this.c.retrySourceCid = header.scid;
    this.c.cids.setInitialRemote({ seq: 0, cid: header.scid, resetToken: undefined });
    // RFC 9001 §5.2: Initial keys are re-derived from the DCID the Retry chose.
    const initial = this.c.spaces[SPACE_INITIAL];
    initial.keys = initialKeys(this.c.provider, header.scid, 'client');
    // Everything sent in Initial packets so far is resent (packet numbers keep going, RFC 9000 §17.2.5.3).
    for (const p of initial.sent.values()) {
      this.c.recovery.leaveFlight(p);
      this.c.loss.onPacketLost(p, SPACE_INITIAL, false);
    }
    initial.sent.clear();
    initial.ackElicitingInFlight = 0;
    void now;
  }

}
