/**
 * The pairing code: 128 bits of entropy shown as a 12-word BIP39 mnemonic (English list,
 * `@scure/bip39`), as Spacedrive shows it (spacedrive-net.md §4.1) — but split into two
 * independent parts (shared/docs/pairing-transfer.md A.3):
 *
 * - **R**, the first 32 bits: the public rendezvous id. It is what the initiator advertises
 *   (mDNS, the relays' rendezvous) so the joiner can find it. Knowing R gives nothing about S.
 * - **S**, the other 96 bits: the CPace password. It never leaves the device.
 *
 * The BIP39 checksum (4 bits) catches typos before anything touches the network. The QR
 * payload adds what a scanning device needs to dial directly: the initiator's EndpointId, its
 * relay and (on a LAN) its direct addresses.
 *
 * @module
 */
import { entropyToMnemonic, mnemonicToEntropy } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { PublicKey } from '../../identity/keys.ts';
import { RelayUrl } from '../../identity/relay-url.ts';
import { SocketAddr } from '../../identity/socket-addr.ts';
import { toHex } from '../../util/bytes.ts';
import { PAIRING_MAX_QR_ADDRESSES, PAIRING_MAX_QR_CHARS } from '../limits.ts';
import { PairingError } from './errors.ts';

/** Bytes of entropy (12 words). */
export const CODE_ENTROPY_BYTES = 16;
/** Bytes of R, the public rendezvous id. */
export const RENDEZVOUS_ID_BYTES = 4;
/** Words in a code. */
export const CODE_WORDS = 12;

const WORDS = new Set(wordlist);

/** A pairing code, parsed. Holds the secret: never log it. */
export class PairingCode {
  /** The 12 words, single-space separated, lower case. */
  readonly words: string;
  /** R: the public rendezvous id (4 bytes). */
  readonly rendezvous: Uint8Array;
  /** S: the secret part (12 bytes). */
  readonly #secret: Uint8Array;

  private constructor(words: string, entropy: Uint8Array) {
    this.words = words;
    this.rendezvous = entropy.slice(0, RENDEZVOUS_ID_BYTES);
    this.#secret = entropy.slice(RENDEZVOUS_ID_BYTES);
  }

  /** A fresh random code. */
  static generate(random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n))): PairingCode {
    const entropy = random(CODE_ENTROPY_BYTES);
    if (entropy.length !== CODE_ENTROPY_BYTES) throw new RangeError(`A code has ${CODE_ENTROPY_BYTES} bytes of entropy`);
    const code = new PairingCode(entropyToMnemonic(entropy, wordlist), entropy);
    entropy.fill(0);
    return code;
  }

  /** The code of `entropy` (16 bytes). */
  static fromEntropy(entropy: Uint8Array): PairingCode {
    if (entropy.length !== CODE_ENTROPY_BYTES) throw new RangeError(`A code has ${CODE_ENTROPY_BYTES} bytes of entropy`);
    return new PairingCode(entropyToMnemonic(entropy, wordlist), entropy.slice());
  }

  /**
   * Parse what a user typed: 12 words separated by any white space, any case. Every check is
   * local (no network): the word count, each word against the BIP39 English list, then the
   * checksum.
   *
   * @throws {PairingError} `ERR_PAIRING_CODE_MALFORMED`, saying which check failed
   */
  static parse(text: string): PairingCode {
    if (typeof text !== 'string' || text.length > PAIRING_MAX_QR_CHARS) throw new PairingError('ERR_PAIRING_CODE_MALFORMED', `malformed code: expected ${CODE_WORDS} words`);
    const words = text.trim().toLowerCase().split(/\s+/u).filter((w) => w !== '');
    if (words.length !== CODE_WORDS) throw new PairingError('ERR_PAIRING_CODE_MALFORMED', `malformed code: expected ${CODE_WORDS} words, got ${words.length}`);
    const unknown = words.findIndex((w) => !WORDS.has(w));
    if (unknown >= 0) throw new PairingError('ERR_PAIRING_CODE_MALFORMED', `malformed code: word ${unknown + 1} ("${words[unknown]!.slice(0, 20)}") is not a code word`);
    const joined = words.join(' ');
    let entropy: Uint8Array;
    try {
      entropy = mnemonicToEntropy(joined, wordlist);
    } catch {
      throw new PairingError('ERR_PAIRING_CODE_MALFORMED', 'malformed code: the words do not check out (a typo?)');
    }
    if (entropy.length !== CODE_ENTROPY_BYTES) throw new PairingError('ERR_PAIRING_CODE_MALFORMED', `malformed code: expected ${CODE_WORDS} words`);
    const code = new PairingCode(joined, entropy);
    entropy.fill(0);
    return code;
  }

  /** R as 8 hex digits: the name the rendezvous and mDNS use. */
  get rendezvousId(): string {
    return toHex(this.rendezvous);
  }

  /** S, the CPace password (a copy: zero it after use). */
  secret(): Uint8Array {
    return this.#secret.slice();
  }

  /** Forget the secret (the session ended). */
  destroy(): void {
    this.#secret.fill(0);
  }

  /** Never show the words or the secret. */
  toJSON(): { rendezvousId: string } {
    return { rendezvousId: this.rendezvousId };
  }

  toString(): string {
    return `PairingCode(${this.rendezvousId}…)`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/** What a joiner starts from: the code, and where to find the initiator if the QR said. */
export interface PairingTicket {
  readonly code: PairingCode;
  /** The initiator's EndpointId (from the QR payload or `--node-id`). */
  readonly nodeId?: PublicKey;
  /** The initiator's relay (QR). */
  readonly relay?: string;
  /** The initiator's direct addresses (QR). */
  readonly addrs?: readonly string[];
}

/** The QR payload: the words plus the initiator's id, relay and direct addresses. Keys sorted (as Spacedrive's serde_json writes them). */
export function qrPayload(code: PairingCode, nodeId: PublicKey, relay: string | undefined, addrs: readonly string[] = []): string {
  const o: Record<string, unknown> = {};
  const bounded = addrs.slice(0, PAIRING_MAX_QR_ADDRESSES);
  if (bounded.length > 0) o.addrs = bounded;
  o.node_id = nodeId.toString();
  o.relay = relay ?? null;
  o.version = 2;
  o.words = code.words;
  return JSON.stringify(o);
}

/**
 * What a user gave `pair join`: the 12 words, or a scanned QR payload (it starts with `{`).
 * `nodeId` (`--node-id`) overrides the payload's.
 *
 * @throws {PairingError} `ERR_PAIRING_CODE_MALFORMED`
 */
export function parsePairingInput(input: string, nodeId?: string): PairingTicket {
  const bad = (why: string): PairingError => new PairingError('ERR_PAIRING_CODE_MALFORMED', `malformed code: ${why}`);
  if (typeof input !== 'string' || input.length > PAIRING_MAX_QR_CHARS) throw bad('too long');
  const text = input.trim();
  let ticket: { code: PairingCode; nodeId?: PublicKey; relay?: string; addrs?: string[] };
  if (text.startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw bad('the QR payload is not JSON');
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('the QR payload is not an object');
    const o = v as Record<string, unknown>;
    if (typeof o.words !== 'string') throw bad('the QR payload has no words');
    ticket = { code: PairingCode.parse(o.words) };
    if (o.node_id !== undefined && o.node_id !== null) {
      if (typeof o.node_id !== 'string') throw bad('node_id is not a string');
      try {
        ticket.nodeId = PublicKey.fromString(o.node_id);
      } catch {
        throw bad('node_id is not an EndpointId');
      }
    }
    if (o.relay !== undefined && o.relay !== null) {
      if (typeof o.relay !== 'string') throw bad('relay is not a URL');
      try {
        ticket.relay = RelayUrl.parse(o.relay).toString();
      } catch {
        throw bad('relay is not a URL');
      }
    }
    if (o.addrs !== undefined) {
      if (!Array.isArray(o.addrs) || o.addrs.length > PAIRING_MAX_QR_ADDRESSES) throw bad(`addrs is not a list of at most ${PAIRING_MAX_QR_ADDRESSES} addresses`);
      try {
        ticket.addrs = o.addrs.map((a) => SocketAddr.parse(String(a)).toString());
      } catch {
        throw bad('addrs holds an address that is not ip:port');
      }
    }
  } else {
    ticket = { code: PairingCode.parse(text) };
  }
  if (nodeId !== undefined) {
    try {
      ticket.nodeId = PublicKey.fromString(nodeId.trim());
    } catch {
      try {
        ticket.nodeId = PublicKey.fromZ32(nodeId.trim());
      } catch {
        throw bad('--node-id is not an EndpointId');
      }
    }
  }
  return ticket;
}
