/**
 * The pairing exchange as two small state machines (no I/O): the joiner's and the
 * initiator's. The stream handlers only carry their messages.
 *
 * The CPace run is bound to the channel it runs on:
 * - **CI** = lv_cat("sdnet-pair/1", EP_initiator, EP_joiner): both EndpointIds as TLS
 *   authenticated them on this connection (never a field a peer claims), the initiator's
 *   first (draft-irtf-cfrg-cpace §10.1.1 "it is recommended to place the initiator's identity
 *   first").
 * - **sid** = a 32-byte TLS exporter of this QUIC connection (RFC 8446 §7.5, label
 *   `EXPORTER-sdnet-pair/1`): unique per connection and equal on both ends only if no one sits
 *   between them (draft §10.9 "it is RECOMMENDED that this is passed to CPace as sid").
 * - **PRS** = S, the 96 secret bits of the code.
 *
 * Joiner = CPace party A (speaks first), initiator = party B. After the shares, explicit key
 * confirmation (draft §10.4): the initiator sends Tb with its share; the joiner checks it in
 * constant time before it sends anything derived from the key, then sends Ta; the initiator
 * checks Ta. Only then does each side open the other's DeviceInfo, sealed under keys derived
 * from the ISK:
 *
 *   HKDF-SHA256(ikm = ISK, salt = sid, info = label ‖ EP_initiator ‖ EP_joiner)
 *   label "sdnet-pair/1 link"      → the link key both store
 *   label "sdnet-pair/1 joiner"    → k_J, seals the joiner's DeviceInfo (ChaCha20-Poly1305)
 *   label "sdnet-pair/1 initiator" → k_G, seals the initiator's DeviceInfo
 *
 * Each sealing key is used once, so the nonce is zero.
 *
 * @module
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { Connection } from '../../endpoint/connection.ts';
import { EndpointAddr } from '../../identity/endpoint-addr.ts';
import type { PublicKey } from '../../identity/keys.ts';
import { parseDeviceInfo, type DeviceInfo } from '../../service/identity.ts';
import { concatBytes, utf8 } from '../../util/bytes.ts';
import { CpaceError, CpaceParty, lvCat } from './cpace.ts';
import { PairingError } from './errors.ts';
import { PAIR_VERSION, type PairMessage, type WireAddr } from './messages.ts';

/** TLS exporter label of the pairing sid. */
export const PAIR_EXPORTER_LABEL = 'EXPORTER-sdnet-pair/1';
/** Associated data of each CPace party (fixed: the identities are in CI). */
export const AD_JOINER = utf8('sdnet-pair/1 joiner');
export const AD_INITIATOR = utf8('sdnet-pair/1 initiator');
const ZERO_NONCE = new Uint8Array(12);

/** Who is who on this connection, as TLS authenticated it, and the connection's sid. */
export interface ChannelBinding {
  readonly initiator: PublicKey;
  readonly joiner: PublicKey;
  /** 32 bytes exported from this connection's TLS session. */
  readonly sid: Uint8Array;
}

/** The binding of a pairing connection, from our side of it. */
export function bindingOf(connection: Connection, ourId: PublicKey, role: 'initiator' | 'joiner'): ChannelBinding {
  const sid = connection.exportKeyingMaterial(PAIR_EXPORTER_LABEL, new Uint8Array(0), 32);
  return role === 'initiator' ? { initiator: ourId, joiner: connection.remoteId, sid } : { initiator: connection.remoteId, joiner: ourId, sid };
}

/** CI = lv_cat("sdnet-pair/1", EP_initiator, EP_joiner). */
export function channelIdentifier(b: ChannelBinding): Uint8Array {
  return lvCat(utf8('sdnet-pair/1'), b.initiator.toBytes(), b.joiner.toBytes());
}

function derive(isk: Uint8Array, b: ChannelBinding, label: string): Uint8Array {
  return hkdf(sha256, isk, b.sid, concatBytes(utf8(label), b.initiator.toBytes(), b.joiner.toBytes()), 32);
}

/** What each side seals for the other: its DeviceInfo and where it can be reached. */
export interface SealedDevice {
  readonly info: DeviceInfo;
  readonly addr: WireAddr;
}

function seal(key: Uint8Array, device: SealedDevice): Uint8Array {
  return chacha20poly1305(key, ZERO_NONCE).encrypt(utf8(JSON.stringify({ info: device.info, addr: device.addr })));
}

function open(key: Uint8Array, sealed: Uint8Array, peer: PublicKey): { info: DeviceInfo; addr: EndpointAddr } {
  let plain: Uint8Array;
  try {
    plain = chacha20poly1305(key, ZERO_NONCE).decrypt(sealed);
  } catch {
    throw new PairingError('ERR_PAIRING_PROTOCOL', 'The peer device info does not open under the pairing key');
  }
  let v: { info?: unknown; addr?: { relay_urls?: unknown; direct_addresses?: unknown } };
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plain)) as typeof v;
  } catch {
    throw new PairingError('ERR_PAIRING_PROTOCOL', 'The peer device info is not JSON');
  }
  const info = parseDeviceInfo(v?.info);
  if (info === undefined) throw new PairingError('ERR_PAIRING_PROTOCOL', 'The peer device info is malformed');
  let addr: EndpointAddr;
  try {
    const relays = Array.isArray(v.addr?.relay_urls) ? (v.addr.relay_urls as unknown[]).slice(0, 4).map(String) : [];
    const direct = Array.isArray(v.addr?.direct_addresses) ? (v.addr.direct_addresses as unknown[]).slice(0, 12).map(String) : [];
    addr = EndpointAddr.from({ id: peer, relayUrls: relays, directAddresses: direct });
  } catch {
    addr = EndpointAddr.from({ id: peer });
  }
  return { info, addr };
}

/** What a successful exchange leaves each side with. */
export interface PairingOutcome {
  readonly peer: PublicKey;
  readonly info: DeviceInfo;
  readonly addr: EndpointAddr;
  /** 32 bytes, the same on both sides; stored in the registry. */
  readonly linkKey: Uint8Array;
}

/** The joiner's side: Start → (Reply) → Confirm → (Done). */
export class JoinerExchange {
  readonly #binding: ChannelBinding;
  readonly #party: CpaceParty;
  readonly #r: string;
  readonly #own: SealedDevice;
  #state: 'new' | 'started' | 'confirmed' | 'done' | 'failed' = 'new';
  #kG: Uint8Array | undefined;
  #linkKey: Uint8Array | undefined;

  constructor(options: { secret: Uint8Array; rendezvousId: string; binding: ChannelBinding; own: SealedDevice }) {
    this.#binding = options.binding;
    this.#r = options.rendezvousId;
    this.#own = options.own;
    this.#party = new CpaceParty('A', { prs: options.secret, ci: channelIdentifier(options.binding), sid: options.binding.sid, ad: AD_JOINER });
  }

  /** Message 1. */
  start(): PairMessage {
    if (this.#state !== 'new') throw new PairingError('ERR_PAIRING_PROTOCOL', 'start() twice');
    this.#state = 'started';
    return { Start: { v: PAIR_VERSION, r: this.#r, ya: this.#party.share } };
  }

  /**
   * Message 2 in, message 3 out. A wrong tag means the secret differs (or the peer is not the
   * device that showed the code): nothing derived from the key is sent.
   *
   * @throws {PairingError} `ERR_PAIRING_WRONG_CODE`, `ERR_PAIRING_INVALID_SHARE`, `ERR_PAIRING_PROTOCOL`
   */
  onReply(reply: { yb: Uint8Array; tb: Uint8Array }): PairMessage {
    if (this.#state !== 'started') throw new PairingError('ERR_PAIRING_PROTOCOL', 'Reply out of order');
    this.#state = 'failed';
    let result;
    try {
      result = this.#party.finish(reply.yb, AD_INITIATOR);
    } catch (err) {
      if (err instanceof CpaceError) throw new PairingError('ERR_PAIRING_INVALID_SHARE', err.message);
      throw err;
    }
    if (!result.verifyPeerTag(reply.tb)) {
      result.isk.fill(0);
      throw new PairingError('ERR_PAIRING_WRONG_CODE');
    }
    const kJ = derive(result.isk, this.#binding, 'sdnet-pair/1 joiner');
    this.#kG = derive(result.isk, this.#binding, 'sdnet-pair/1 initiator');
    this.#linkKey = derive(result.isk, this.#binding, 'sdnet-pair/1 link');
    result.isk.fill(0);
    const sealed = seal(kJ, this.#own);
    kJ.fill(0);
    this.#state = 'confirmed';
    return { Confirm: { ta: result.ownTag, sealed } };
  }

  /**
   * Message 4 in: the initiator's device info.
   *
   * @throws {PairingError} `ERR_PAIRING_PROTOCOL`
   */
  onDone(done: { sealed: Uint8Array }): PairingOutcome {
    if (this.#state !== 'confirmed') throw new PairingError('ERR_PAIRING_PROTOCOL', 'Done out of order');
    this.#state = 'done';
    const peer = this.#binding.initiator;
    const { info, addr } = open(this.#kG!, done.sealed, peer);
    this.#kG!.fill(0);
    return { peer, info, addr, linkKey: this.#linkKey! };
  }

  /** Forget the keys (failure). */
  destroy(): void {
    this.#kG?.fill(0);
    this.#linkKey?.fill(0);
    this.#state = 'failed';
  }
}

/** The initiator's side: (Start) → Reply → (Confirm) → Done. */
export class InitiatorExchange {
  readonly #binding: ChannelBinding;
  readonly #party: CpaceParty;
  readonly #own: SealedDevice;
  #state: 'new' | 'replied' | 'done' | 'failed' = 'new';
  #verify: ((tag: Uint8Array) => boolean) | undefined;
  #kJ: Uint8Array | undefined;
  #kG: Uint8Array | undefined;
  #linkKey: Uint8Array | undefined;

  constructor(options: { secret: Uint8Array; binding: ChannelBinding; own: SealedDevice }) {
    this.#binding = options.binding;
    this.#own = options.own;
    this.#party = new CpaceParty('B', { prs: options.secret, ci: channelIdentifier(options.binding), sid: options.binding.sid, ad: AD_INITIATOR });
  }

  /**
   * Message 1 in, message 2 out.
   *
   * @throws {PairingError} `ERR_PAIRING_INVALID_SHARE` (Ya not a group element, or the identity), `ERR_PAIRING_PROTOCOL`
   */
  onStart(start: { v: number; ya: Uint8Array }): PairMessage {
    if (this.#state !== 'new') throw new PairingError('ERR_PAIRING_PROTOCOL', 'Start out of order');
    this.#state = 'failed';
    if (start.v !== PAIR_VERSION) throw new PairingError('ERR_PAIRING_PROTOCOL', `Unknown pairing version ${start.v}`);
    let result;
    try {
      result = this.#party.finish(start.ya, AD_JOINER);
    } catch (err) {
      if (err instanceof CpaceError) throw new PairingError('ERR_PAIRING_INVALID_SHARE', err.message);
      throw err;
    }
    this.#verify = result.verifyPeerTag;
    this.#kJ = derive(result.isk, this.#binding, 'sdnet-pair/1 joiner');
    this.#kG = derive(result.isk, this.#binding, 'sdnet-pair/1 initiator');
    this.#linkKey = derive(result.isk, this.#binding, 'sdnet-pair/1 link');
    result.isk.fill(0);
    this.#state = 'replied';
    return { Reply: { yb: this.#party.share, tb: result.ownTag } };
  }

  /**
   * Message 3 in, message 4 out: checks Ta (constant time), opens the joiner's info.
   *
   * @throws {PairingError} `ERR_PAIRING_WRONG_CODE` for a wrong tag, `ERR_PAIRING_PROTOCOL`
   */
  onConfirm(confirm: { ta: Uint8Array; sealed: Uint8Array }): { outcome: PairingOutcome; done: PairMessage } {
    if (this.#state !== 'replied') throw new PairingError('ERR_PAIRING_PROTOCOL', 'Confirm out of order');
    this.#state = 'failed';
    if (!this.#verify!(confirm.ta)) {
      this.destroy();
      throw new PairingError('ERR_PAIRING_WRONG_CODE');
    }
    const peer = this.#binding.joiner;
    const { info, addr } = open(this.#kJ!, confirm.sealed, peer);
    const sealed = seal(this.#kG!, this.#own);
    this.#kJ!.fill(0);
    this.#kG!.fill(0);
    this.#state = 'done';
    return { outcome: { peer, info, addr, linkKey: this.#linkKey! }, done: { Done: { sealed } } };
  }

  /** Forget the keys (failure). */
  destroy(): void {
    this.#kJ?.fill(0);
    this.#kG?.fill(0);
    this.#linkKey?.fill(0);
    this.#state = 'failed';
  }
}
