/**
 * n0 NAT traversal ("QNT", holepunch.md §2; noq's `n0_nat_traversal.rs` is the reference):
 * the server tells the client its candidate addresses (ADD_ADDRESS / REMOVE_ADDRESS), the
 * client tells the server its own in rounds (REACH_OUT), and the server sends off-path probes
 * (unpadded PATH_CHALLENGEs) to those on noq's schedule so that its NAT lets the client's new
 * path in. In use only when both sides sent the parameter and multipath is in use.
 *
 * Every collection is bounded: the peer's addresses by the value we advertised (and
 * MAX_NAT_ADDRESSES), probes by that value too.
 *
 * @module
 */
import { TransportError, TransportErrorCode } from '../errors.ts';
import type { DirectAddress, TransportParameters } from '../wire/transport-params.ts';
import type { PathAddr } from './types.ts';

/** Addresses we keep from the peer (our parameter value; iroh says 32). */
export const MAX_NAT_ADDRESSES = 32;

/** noq's probe schedule, µs after a round starts: 0, 33, 67, 133, 266, 533, 1066, 2131, 4131 ms (holepunch.md §2.3). */
export const PROBE_SCHEDULE: readonly number[] = [0, 33_333, 66_667, 133_333, 266_667, 533_333, 1_066_667, 2_131_333, 4_131_333];

export interface NatProbe {
  readonly addr: PathAddr;
  readonly data: Uint8Array;
  readonly start: number;
  attempt: number;
}

const violation = (reason: string, wireType: number): TransportError => new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, reason, wireType);

export class NatTraversal {
  readonly side: 'client' | 'server';
  /** Our parameter value; undefined when we do not offer it. */
  readonly localLimit: number | undefined;
  #offered = false;
  #active = false;
  /** Server: our addresses and whether each still owes its ADD_ADDRESS. */
  readonly advertised: { seq: number; address: DirectAddress; pending: boolean }[] = [];
  /** Client: the server's addresses by sequence number. */
  readonly remote = new Map<number, DirectAddress>();
  /** Client: our round number and the REACH_OUTs it still owes. */
  round = 0;
  readonly reachOuts: DirectAddress[] = [];
  /** Server: the client's latest round and the addresses of it. */
  #peerRound = 0;
  readonly #peerRoundAddresses = new Set<string>();
  /** Server: probes being sent (off-path PATH_CHALLENGEs). */
  readonly probes: NatProbe[] = [];

  constructor(side: 'client' | 'server', offer: boolean) {
    this.side = side;
    this.localLimit = offer ? MAX_NAT_ADDRESSES : undefined;
  }

  get active(): boolean {
    return this.#active;
  }

  onPeerParams(p: TransportParameters): void {
    this.#offered = this.localLimit !== undefined && p.natTraversal !== undefined;
  }

  /** The handshake is complete: in use if both offered it and multipath is in use (holepunch.md §2.1). */
  onHandshakeComplete(multipath: boolean): void {
    this.#active = this.#offered && multipath;
  }

  /** A QNT frame arrived: it needs negotiation and the right direction (holepunch.md §2.1). */
  check(wireType: number, type: 'add_address' | 'reach_out' | 'remove_address'): void {
    if (!this.#active) throw violation('n0 NAT traversal frame without negotiating it', wireType);
    if (type === 'reach_out' ? this.side !== 'server' : this.side !== 'client') throw violation(`n0 NAT traversal: ${type} sent the wrong way`, wireType);
  }

  /** Server: advertise `addresses` (new ones get the next sequence numbers). */
  advertise(addresses: readonly DirectAddress[]): void {
    for (const a of addresses) {
      if (this.advertised.some((x) => sameAddress(x.address, a))) continue;
      if (this.advertised.length >= MAX_NAT_ADDRESSES) break;
      this.advertised.push({ seq: this.advertised.length, address: a, pending: true });
    }
  }

  /** Client: ADD_ADDRESS. Returns the address when it is new (beyond our limit it is dropped, as noq). */
  onAddAddress(seq: number, address: DirectAddress): DirectAddress | undefined {
    const known = this.remote.get(seq);
    if (known !== undefined && sameAddress(known, address)) return undefined;
    if (known === undefined && this.remote.size >= this.localLimit!) return undefined;
    this.remote.set(seq, address);
    return address;
  }

  /** Client: REMOVE_ADDRESS. Returns the address removed, if known. */
  onRemoveAddress(seq: number): DirectAddress | undefined {
    const a = this.remote.get(seq);
    this.remote.delete(seq);
    return a;
  }

  /** Client: start a round announcing `candidates` (all of them, every round). */
  startRound(candidates: readonly DirectAddress[]): void {
    this.round++;
    this.reachOuts.length = 0;
    for (const c of candidates.slice(0, MAX_NAT_ADDRESSES)) this.reachOuts.push(c);
  }

  /**
   * Server: REACH_OUT. Returns whether the address is new in the current round (then it is
   * probed). An older round is ignored; a newer one starts afresh; more addresses in one round
   * than our parameter allows is a PROTOCOL_VIOLATION.
   */
  onReachOut(round: number, address: DirectAddress, wireType: number): boolean {
    if (round < this.#peerRound) return false;
    if (round > this.#peerRound) {
      this.#peerRound = round;
      this.#peerRoundAddresses.clear();
      this.probes.length = 0;
    }
    const key = addressKey(address);
    if (this.#peerRoundAddresses.has(key)) return false;
    if (this.#peerRoundAddresses.size >= this.localLimit!) throw violation('n0 NAT traversal: more REACH_OUT addresses in one round than allowed', wireType);
    this.#peerRoundAddresses.add(key);
    return true;
  }

  /** Server: probe `addr` with challenge `data` from `now` on the schedule. */
  addProbe(addr: PathAddr, data: Uint8Array, now: number): void {
    if (this.probes.some((p) => p.addr.key === addr.key)) return;
    this.probes.push({ addr, data, start: now, attempt: 0 });
  }

  /** When the next probe is due (0: none). */
  get nextProbeAt(): number {
    let t = 0;
    for (const p of this.probes) {
      const at = p.start + PROBE_SCHEDULE[p.attempt]!;
      if (t === 0 || at < t) t = at;
    }
    return t;
  }

  /** A PATH_RESPONSE arrived from `addr`: a probe answered from exactly there stops. Returns whether one matched. */
  onResponse(addr: PathAddr, data: Uint8Array): boolean {
    const i = this.probes.findIndex((p) => p.addr.key === addr.key && equal(p.data, data));
    if (i < 0) return false;
    this.probes.splice(i, 1);
    return true;
  }
}

function addressKey(a: DirectAddress): string {
  return `${a.ip.join('.')}:${a.port}`;
}

function sameAddress(a: DirectAddress, b: DirectAddress): boolean {
  return a.port === b.port && equal(a.ip, b.ip);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
