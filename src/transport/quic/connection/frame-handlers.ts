/**
 * What each frame of a received packet does to a connection (RFC 9000 §19, multipath-21 §4,
 * n0 NAT traversal, address discovery): the handlers `frame-dispatch.ts` calls, with the
 * checks that are particular to the frame (direction, negotiation, sequence numbers).
 *
 * @module
 */
import { TransportError, TransportErrorCode } from '../errors.ts';
import { PATH_CIDS_PER_PATH } from '../limits.ts';
import { isProbeable } from '../address.ts';
import { type FrameHandlers } from './frame-dispatch.ts';
import { MIN_DATAGRAM } from './paths.ts';
import { SPACE_APP } from './spaces.ts';
import type { ConnectionCore } from './core.ts';

/**
 * The frame handlers of the connection whose parts `c` holds. Each runs for one frame of the
 * packet described by `c.rx`, and throws a {@link TransportError} with the RFC's code when the
 * peer broke a rule.
 */
export function frameHandlers(c: ConnectionCore): FrameHandlers {
  return {
    ack: (f, wireType) => {
      // multipath-21 §2.3: an ACK acknowledges path 0's packets, a PATH_ACK those of its path.
      const id = f.pathId ?? 0;
      if (f.pathId !== undefined) c.multipath.checkFrame(wireType, f.pathId);
      if (c.rx.space !== SPACE_APP || id === c.tx) return c.loss.onAck(c.rx.now, f, c.rx.space, wireType);
      const rec = c.mp(id);
      // RFC 9000 §13.1 per path: acknowledging packets of a path we never sent on → PROTOCOL_VIOLATION.
      if (rec === undefined) {
        if (c.multipath.isClosed(id)) return; // late acknowledgments of a path gone (§3.4.1)
        throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, `PATH_ACK for path ${id}, never used`, wireType);
      }
      c.loss.onPathAck(c.rx.now, f, rec, wireType);
    },
    crypto: (f, wireType) => c.handshake.onCrypto(c.rx.now, f.offset, f.data, c.rx.space, wireType),
    stream: (f, wireType) => c.streams.onStreamFrame(f, wireType),
    resetStream: (f, wireType) => c.streams.onResetStream(f.id, f.code, f.finalSize, wireType),
    stopSending: (f, wireType) => c.streams.onStopSending(f.id, f.code, wireType),
    maxData: (f) => c.streams.onMaxData(f.max),
    maxStreamData: (f, wireType) => c.streams.onMaxStreamData(f.id, f.max, wireType),
    maxStreams: (f) => c.streams.onMaxStreams(f.bidi ? 'bi' : 'uni', f.max),
    blocked: (f, wireType) => {
      // Informational; our window updates are driven by consumption (RFC 9000 §4.1).
      if (f.type === 'stream_data_blocked') c.streams.onStreamDataBlocked(f.id, wireType);
    },
    newToken: (_f, wireType) => {
      // RFC 9000 §19.7: a server receiving NEW_TOKEN → PROTOCOL_VIOLATION. Clients ignore it (no 0-RTT).
      if (c.side === 'server') throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'client sent NEW_TOKEN', wireType);
    },
    newConnectionId: (f, wireType) => {
      // multipath-21 §4.5: PATH_NEW_CONNECTION_ID for path 0 is NEW_CONNECTION_ID; higher ids are refused by checkFrame while we allow path 0 only.
      if (f.pathId !== undefined) c.multipath.checkFrame(wireType, f.pathId);
      if (f.pathId !== undefined && f.pathId !== 0) {
        if (c.multipath.isClosed(f.pathId)) return;
        return c.pathCids.onNewConnectionId(f.pathId, f.seq, f.retirePriorTo, f.cid, f.resetToken, wireType);
      }
      c.cids.onNewConnectionId(f, wireType);
    },
    retireConnectionId: (f, wireType) => {
      if (f.pathId !== undefined) c.multipath.checkFrame(wireType, f.pathId);
      const pto = c.recovery.rtt.pto(c.peerMaxAckDelay);
      if (f.pathId !== undefined && f.pathId !== 0) {
        if (c.pathCids.onRetireConnectionId(f.pathId, f.seq, wireType, c.packetDcid, c.now, pto) && !c.multipath.isClosed(f.pathId)) {
          const count = Math.min(c.peerParams?.activeConnectionIdLimit ?? 2, PATH_CIDS_PER_PATH);
          c.pathCids.issue(f.pathId, count, c.cids.localLength);
        }
        return;
      }
      if (c.cids.onRetireConnectionId(f.seq, wireType, c.packetDcid, c.now, pto) && c.state === 'established') c.issueCids();
    },
    pathChallenge: (f) => {
      const path = c.rx.path;
      if (c.rx.pathId !== c.tx) {
        // multipath-21 §3.1: answered on the path the challenge came on (its path id and 4-tuple).
        const rec = c.mp(c.rx.pathId);
        if (rec !== undefined && !rec.abandoned && rec.state.addr.key === path.key) {
          if (rec.state.responses.length < 4) rec.state.responses.push(f.data);
          return;
        }
        // Off-path (an n0 probe from an address that is no path of ours): answered to its source below.
      }
      // holepunch.md §2.3: a client probed from an address that is no path of ours learns a
      // peer-reflexive candidate (an EDM NAT maps the server's probes to a port no ADD_ADDRESS
      // names) and opens a path there, through the mapping the probe opened.
      const offPath = c.side === 'client' && c.nat.active && path.relayed !== true && path.key !== c.path.addr.key;
      if (offPath) c.paths.addCandidate(c.rx.now, path, true);
      const p = path.key === c.path.addr.key ? c.path : c.paths.otherPath(path, false, true);
      // RFC 9000 §8.2.2: answer with PATH_RESPONSE on the path the challenge came from.
      if (p.responses.length >= 4) return;
      p.responses.push(f.data);
      // holepunch.md §2.3 (noq): the answer to an off-path probe is padded to 1200 bytes, beyond
      // the 3× rule, so a path MTU too small for QUIC shows at once. Only authenticated probes
      // that are no replay (§12.3) get here, and the credit comes from a bucket.
      if (offPath && !p.validated && p.peerInitiated && c.paths.paddedResponses.take(c.rx.now)) p.credit += MIN_DATAGRAM;
    },
    pathResponse: (f) => {
      if (c.nat.probes.length > 0 && c.nat.onResponse(c.rx.path, f.data)) return;
      if (c.multipath.paths.size > 0 && c.paths.onMpPathResponse(c.rx.now, c.rx.path, f.data)) return;
      c.paths.onPathResponse(c.rx.now, c.rx.path, f.data);
    },
    connectionClose: (f) => c.onConnectionClose(c.rx.now, f),
    handshakeDone: (wireType) => {
      // RFC 9000 §19.20: a server receiving HANDSHAKE_DONE → PROTOCOL_VIOLATION.
      if (c.side === 'server') throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'client sent HANDSHAKE_DONE', wireType);
      c.handshake.confirmHandshake(c.rx.now);
    },
    datagram: (f, wireType) => {
      c.datagrams.onFrame(f.data, wireType);
      c.events.push({ type: 'datagram' });
    },
    observedAddress: (f, wireType) => {
      const mode = c.settings.addressDiscovery;
      // draft-ietf-quic-address-discovery §3: a node that did not request observations MUST
      // close with PROTOCOL_VIOLATION when it receives one.
      if (mode !== 1 && mode !== 2) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'OBSERVED_ADDRESS without having asked for it', wireType);
      // §3: ignore a frame whose sequence number is not above the last one received.
      if (c.observed !== undefined && f.seq <= c.observed.seq) return;
      c.observed = { seq: f.seq, ip: f.ip, port: f.port };
      c.events.push({ type: 'observed-address', ip: f.ip, port: f.port });
    },
    pathControl: (f, wireType) => {
      const mp = c.multipath;
      switch (f.type) {
        case 'path_abandon': {
          mp.checkFrame(wireType, f.pathId);
          const rec = mp.paths.get(f.pathId);
          if (rec === undefined) {
            // A path the peer opened and gave up before any of its packets reached us (a probe
            // into a blocked network): closed for good all the same, and, as for any abandoned
            // path, one more id allowed, or a peer retrying through an outage runs out of ids.
            if (f.pathId === 0 || mp.isClosed(f.pathId)) return; // already gone
            c.paths.closeUnseenPath(c.rx.now, f.pathId);
            return;
          }
          const others = [...mp.paths.values()].some((p) => p.id !== f.pathId && !p.abandoned);
          // multipath-21 §3.4: the last path abandoned leaves nothing to send on: the connection
          // ends (noq closes after its grace period too).
          if (!others) throw new TransportError(TransportErrorCode.NO_ERROR, `peer abandoned path ${f.pathId}, the last path (code 0x${f.code.toString(16)})`, wireType);
          // §3.4: MUST answer with PATH_ABANDON (unless already sent) and treat the peer's IDs for it as retired.
          c.paths.abandonPath(c.rx.now, f.pathId, 0);
          return;
        }
        case 'path_status':
          return mp.onPathStatus(f.pathId, f.seq, f.available, wireType);
        case 'max_path_id':
          mp.onMaxPathId(f.max, wireType);
          // §3.2: connection IDs for the path ids it now allows.
          return c.paths.issuePathCids();
        case 'paths_blocked':
          return mp.onPathsBlocked(f.max, wireType);
        case 'path_cids_blocked':
          return mp.onPathCidsBlocked(f.pathId, f.nextSeq, c.cids.nextLocalSeq, wireType);
      }
    },
    natTraversal: (f, wireType) => {
      const nat = c.nat;
      // holepunch.md §2.1: negotiated on both sides, and each frame only in its direction.
      nat.check(wireType, f.type);
      const now = c.rx.now;
      if (f.type === 'remove_address') {
        const a = nat.onRemoveAddress(f.seq);
        const path = a === undefined ? undefined : c.resolvePath?.(a);
        const cand = path === undefined ? undefined : c.paths.candidates.get(path.key);
        if (cand !== undefined && cand.advertised && !cand.probing) c.paths.candidates.delete(path!.key);
        return;
      }
      const address = { ip: f.ip, port: f.port };
      // Whatever the peer says, nothing goes to an address no single host has (we would be its reflector).
      if (!isProbeable(address)) return;
      if (f.type === 'add_address') {
        if (nat.onAddAddress(f.seq, address) === undefined) return;
        const path = c.resolvePath?.(address);
        if (path !== undefined) c.paths.addCandidate(now, path, true);
        return;
      }
      // REACH_OUT: probe the client's address on noq's schedule so our NAT lets its path in.
      if (!nat.onReachOut(f.round, address, wireType)) return;
      const path = c.resolvePath?.(address);
      if (path === undefined || path.key === c.path.addr.key || !c.paths.probes.take(now)) return;
      nat.addProbe(path, c.provider.randomBytes(8), now);
    },
    stopped: () => c.state === 'draining' || c.state === 'closed',
  };
}
