/**
 * Network paths (RFC 9000 §8, §9): the 4-tuples a connection sends on or hears from, whether
 * each is validated, its outstanding PATH_CHALLENGE and owed PATH_RESPONSEs, and the
 * anti-amplification limit of one the peer brought to us.
 *
 * @module
 */
import type { PathAddr } from './types.ts';

/** RFC 9000 §14.1: the smallest allowed maximum datagram size. */
export const MIN_DATAGRAM = 1200;
/** PATH_CHALLENGE sends per validation (one every PTO until the deadline). */
export const CHALLENGE_SENDS = 3;

export interface PathState {
  addr: PathAddr;
  validated: boolean;
  mtu: number;
  /** Outstanding PATH_CHALLENGE data and when to give up. */
  challenge: Uint8Array | undefined;
  challengeSentAt: number;
  challengeDeadline: number;
  challengePending: boolean;
  /** Sends of the current challenge so far, and when to send it again. */
  challengeSends: number;
  challengeResendAt: number;
  /** PATH_RESPONSEs owed on this path. */
  responses: Uint8Array[];
  bytesReceived: number;
  bytesSent: number;
  /** When an authenticated packet last arrived on it while we sent on it (µs; 0: never). */
  heardAt: number;
  /** Bytes we may send beyond the 3× rule (a padded PATH_RESPONSE to an off-path probe, from a bucket). */
  credit: number;
  /**
   * The peer brought this path to us (its first Initial, a migration, a probe). Until it is
   * validated we may send it at most three times what it sent (RFC 9000 §8, §9.3).
   */
  peerInitiated: boolean;
}

export function newPath(addr: PathAddr, validated: boolean, peerInitiated: boolean): PathState {
  return { addr, validated, mtu: MIN_DATAGRAM, challenge: undefined, challengeSentAt: 0, challengeDeadline: 0, challengePending: false, challengeSends: 0, challengeResendAt: 0, responses: [], bytesReceived: 0, bytesSent: 0, credit: 0, heardAt: 0, peerInitiated };
}

/** Bytes we may still send on `p` (RFC 9000 §8, §9.3: three times what it sent until validated). */
export function pathBudget(p: PathState): number {
  return p.validated || !p.peerInitiated ? Infinity : 3 * p.bytesReceived + p.credit - p.bytesSent;
}

/** Start validating `p` (RFC 9000 §8.2): `data` is the challenge, `pto` the current PTO. */
export function startChallenge(p: PathState, data: Uint8Array, now: number, pto: number, initialRtt: number): void {
  p.challenge = data;
  p.challengePending = true;
  p.challengeSentAt = now;
  p.challengeSends = 1;
  p.challengeResendAt = now + pto;
  // RFC 9000 §8.2.4: give up after three PTOs (at least).
  p.challengeDeadline = now + Math.max(3 * pto, 6 * initialRtt);
}
