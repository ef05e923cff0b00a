/**
 * The pairing code and the exchange state machines without a network: codes (generation,
 * R/S split, typo detection, QR payload), a full exchange through the wire codec, and each
 * way it must fail — wrong secret, a different channel (another sid or another identity in
 * CI, i.e. a relay in the middle), tampered tags, invalid shares, out-of-order calls.
 */
import { describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import { SecretKey } from '../../src/identity/keys.ts';
import { PairingCode, parsePairingInput, qrPayload } from '../../src/protocols/pairing/code.ts';
import { InitiatorExchange, JoinerExchange, type ChannelBinding, type SealedDevice } from '../../src/protocols/pairing/exchange.ts';
import { decodePairMessage, encodePairMessage, PairMessageError, type PairMessage } from '../../src/protocols/pairing/messages.ts';
import { PairingError } from '../../src/protocols/pairing/errors.ts';
import { toHex } from '../../src/util/bytes.ts';

const wire = (m: PairMessage): PairMessage => decodePairMessage(encodePairMessage(m));

const device = (name: string): SealedDevice => ({
  info: { deviceId: crypto.randomUUID(), name, os: 'linux', osVersion: '6', kind: 'desktop', appVersion: '0.1.0' },
  addr: { relay_urls: ['http://relay.test/'], direct_addresses: ['127.0.0.1:4433'] },
});

function binding(): ChannelBinding {
  return { initiator: SecretKey.generate().public(), joiner: SecretKey.generate().public(), sid: crypto.getRandomValues(new Uint8Array(32)) };
}

describe('pairing code', () => {
  it('12 words; R is the first 32 bits and S the other 96; parse gives them back', () => {
    const entropy = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const code = PairingCode.fromEntropy(entropy);
    expect(code.words.split(' ')).toHaveLength(12);
    expect(toHex(code.rendezvous)).toBe('01020304');
    expect(code.rendezvousId).toBe('01020304');
    expect(toHex(code.secret())).toBe('05060708090a0b0c0d0e0f10');
    const again = PairingCode.parse(`  ${code.words.toUpperCase().replaceAll(' ', '\n\t ')}  `);
    expect(again.rendezvousId).toBe('01020304');
    expect(toHex(again.secret())).toBe(toHex(code.secret()));
    const fresh = PairingCode.generate();
    expect(fresh.words).not.toBe(code.words);
  });

  it('typos are caught locally: count, unknown word, checksum — ERR_PAIRING_CODE_MALFORMED', () => {
    const words = PairingCode.generate().words.split(' ');
    const expectMalformed = (text: string, why: RegExp): void => {
      try {
        PairingCode.parse(text);
        expect.unreachable('accepted a malformed code');
      } catch (err) {
        expect(err).toBeInstanceOf(PairingError);
        expect((err as PairingError).code).toBe('ERR_PAIRING_CODE_MALFORMED');
        expect((err as Error).message).toMatch(why);
      }
    };
    expectMalformed(words.slice(0, 11).join(' '), /12 words, got 11/);
    expectMalformed([...words, 'abandon'].join(' '), /got 13/);
    expectMalformed(['abandonx', ...words.slice(1)].join(' '), /word 1 .* not a code word/);
    // Swap the last word for another valid word: the checksum (last 4 bits) catches all but 1 in 16.
    let caught = 0;
    for (const w of ['abandon', 'ability', 'able', 'about', 'above', 'absent', 'absorb', 'abstract']) {
      if (w === words[11]) continue;
      try {
        PairingCode.parse([...words.slice(0, 11), w].join(' '));
      } catch (err) {
        expect((err as PairingError).code).toBe('ERR_PAIRING_CODE_MALFORMED');
        caught++;
      }
    }
    expect(caught).toBeGreaterThan(3);
    // Change one middle word: the checksum detects most; any accepted variant has a different R or S.
    const swapped = [...words];
    swapped[5] = swapped[5] === 'zoo' ? 'zone' : 'zoo';
    try {
      const other = PairingCode.parse(swapped.join(' '));
      expect(toHex(other.secret()) + other.rendezvousId).not.toBe(toHex(PairingCode.parse(words.join(' ')).secret()) + PairingCode.parse(words.join(' ')).rendezvousId);
    } catch (err) {
      expect((err as PairingError).code).toBe('ERR_PAIRING_CODE_MALFORMED');
    }
  });

  it('never shows the words or the secret in JSON or inspect', () => {
    const code = PairingCode.generate();
    const shown = `${JSON.stringify(code)} ${inspect(code)} ${String(code)}`;
    for (const w of code.words.split(' ')) expect(shown).not.toContain(` ${w} `);
    expect(shown).not.toContain(toHex(code.secret()));
    expect(shown).toContain(code.rendezvousId);
  });

  it('QR payload: words, node id, relay, addresses; --node-id overrides; bad payloads are malformed', () => {
    const code = PairingCode.generate();
    const id = SecretKey.generate().public();
    const qr = qrPayload(code, id, 'http://relay.test/', ['127.0.0.1:5000']);
    expect(Object.keys(JSON.parse(qr) as object)).toEqual(['addrs', 'node_id', 'relay', 'version', 'words']);
    const t = parsePairingInput(qr);
    expect(t.code.words).toBe(code.words);
    expect(t.nodeId?.toString()).toBe(id.toString());
    expect(t.relay).toBe('http://relay.test/');
    expect(t.addrs).toEqual(['127.0.0.1:5000']);
    const other = SecretKey.generate().public();
    expect(parsePairingInput(code.words, other.toString()).nodeId?.toString()).toBe(other.toString());
    expect(parsePairingInput(qr, other.toString()).nodeId?.toString()).toBe(other.toString());
    for (const bad of ['{', '{"words":1}', `{"words":"${code.words}","node_id":"xyz"}`, `{"words":"${code.words}","relay":"not a url"}`, `{"words":"${code.words}","addrs":["nope"]}`, `{"words":"${code.words}","addrs":${JSON.stringify(Array(9).fill('1.2.3.4:5'))}}`]) {
      expect(() => parsePairingInput(bad)).toThrow(PairingError);
    }
    expect(() => parsePairingInput(code.words, 'not-an-id')).toThrow(/node-id/);
    expect(() => parsePairingInput('x'.repeat(5000))).toThrow(/too long/);
  });
});

describe('pairing exchange', () => {
  function run(options: { joinerSecret?: Uint8Array; initiatorSecret?: Uint8Array; joinerBinding?: ChannelBinding; initiatorBinding?: ChannelBinding } = {}) {
    const code = PairingCode.generate();
    const b = binding();
    const j = new JoinerExchange({ secret: options.joinerSecret ?? code.secret(), rendezvousId: code.rendezvousId, binding: options.joinerBinding ?? b, own: device('joiner') });
    const g = new InitiatorExchange({ secret: options.initiatorSecret ?? code.secret(), binding: options.initiatorBinding ?? b, own: device('initiator') });
    return { code, b, j, g };
  }

  it('same code, same channel: both end with the same link key and each other\'s info', () => {
    const { j, g, b, code } = run();
    const start = wire(j.start());
    if (!('Start' in start)) throw new Error('expected Start');
    expect(start.Start.r).toBe(code.rendezvousId);
    const reply = wire(g.onStart(start.Start));
    if (!('Reply' in reply)) throw new Error('expected Reply');
    const confirm = wire(j.onReply(reply.Reply));
    if (!('Confirm' in confirm)) throw new Error('expected Confirm');
    const { outcome: og, done } = g.onConfirm(confirm.Confirm);
    const d = wire(done);
    if (!('Done' in d)) throw new Error('expected Done');
    const oj = j.onDone(d.Done);
    expect(toHex(og.linkKey)).toBe(toHex(oj.linkKey));
    expect(og.linkKey).toHaveLength(32);
    expect(og.peer.toString()).toBe(b.joiner.toString());
    expect(oj.peer.toString()).toBe(b.initiator.toString());
    expect(og.info.name).toBe('joiner');
    expect(oj.info.name).toBe('initiator');
    expect(oj.addr.relayUrls.map(String)).toEqual(['http://relay.test/']);
  });

  it('wrong secret (same R): the joiner rejects the initiator\'s tag and sends nothing keyed', () => {
    const other = PairingCode.generate().secret();
    const { j, g } = run({ joinerSecret: other });
    const start = j.start() as { Start: { v: number; r: string; ya: Uint8Array } };
    const reply = g.onStart(start.Start) as { Reply: { yb: Uint8Array; tb: Uint8Array } };
    expect(() => j.onReply(reply.Reply)).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_WRONG_CODE' }));
  });

  it('a peer that skips the check and confirms anyway is refused by the initiator', () => {
    const { j, g } = run({ joinerSecret: PairingCode.generate().secret() });
    const start = j.start() as { Start: { v: number; r: string; ya: Uint8Array } };
    g.onStart(start.Start);
    expect(() => g.onConfirm({ ta: new Uint8Array(64), sealed: new Uint8Array(32) })).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_WRONG_CODE' }));
  });

  it('a different channel on each side (a relay in the middle: other sid, other identities) fails the confirmation', () => {
    const b = binding();
    for (const other of [{ ...b, sid: crypto.getRandomValues(new Uint8Array(32)) }, { ...b, joiner: SecretKey.generate().public() }, { ...b, initiator: b.joiner, joiner: b.initiator }]) {
      const { j, g } = run({ joinerBinding: b, initiatorBinding: other });
      const start = j.start() as { Start: { v: number; r: string; ya: Uint8Array } };
      const reply = g.onStart(start.Start) as { Reply: { yb: Uint8Array; tb: Uint8Array } };
      expect(() => j.onReply(reply.Reply)).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_WRONG_CODE' }));
    }
  });

  it('invalid shares: identity and undecodable', () => {
    const { g } = run();
    expect(() => g.onStart({ v: 1, ya: new Uint8Array(32) })).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_INVALID_SHARE' }));
    const { j, g: g2 } = run();
    const start = j.start() as { Start: { v: number; r: string; ya: Uint8Array } };
    g2.onStart(start.Start);
    expect(() => j.onReply({ yb: new Uint8Array(32).fill(0xff), tb: new Uint8Array(64) })).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_INVALID_SHARE' }));
  });

  it('out of order and twice: refused', () => {
    const { j, g } = run();
    expect(() => j.onReply({ yb: new Uint8Array(32), tb: new Uint8Array(64) })).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_PROTOCOL' }));
    expect(() => g.onConfirm({ ta: new Uint8Array(64), sealed: new Uint8Array(0) })).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_PROTOCOL' }));
    const start = j.start() as { Start: { v: number; r: string; ya: Uint8Array } };
    expect(() => j.start()).toThrow(PairingError);
    g.onStart(start.Start);
    expect(() => g.onStart(start.Start)).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_PROTOCOL' }));
    expect(() => j.onDone({ sealed: new Uint8Array(40) })).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_PROTOCOL' }));
    const { g: g3 } = run();
    expect(() => g3.onStart({ v: 2, ya: start.Start.ya })).toThrow(/version/);
  });

  it('a tampered sealed info is refused', () => {
    const { j, g } = run();
    const start = j.start() as { Start: { v: number; r: string; ya: Uint8Array } };
    const reply = g.onStart(start.Start) as { Reply: { yb: Uint8Array; tb: Uint8Array } };
    const confirm = j.onReply(reply.Reply) as { Confirm: { ta: Uint8Array; sealed: Uint8Array } };
    confirm.Confirm.sealed[0]! ^= 1;
    expect(() => g.onConfirm(confirm.Confirm)).toThrow(expect.objectContaining({ code: 'ERR_PAIRING_PROTOCOL' }));
  });
});

describe('pairing messages', () => {
  it('strict decoding: sizes, types, one tag', () => {
    const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
    const b64 = (n: number): string => Buffer.alloc(n).toString('base64');
    expect(decodePairMessage(enc({ Start: { v: 1, r: '0a0b0c0d', ya: b64(32) } }))).toMatchObject({ Start: { v: 1, r: '0a0b0c0d' } });
    for (const bad of [
      { Start: { v: 1, r: '0a0b0c0d', ya: b64(31) } },
      { Start: { v: 1, r: '0A0B0C0D', ya: b64(32) } },
      { Start: { v: -1, r: '0a0b0c0d', ya: b64(32) } },
      { Start: { v: 1, r: '0a0b0c0d', ya: b64(32) }, Reply: {} },
      { Reply: { yb: b64(32), tb: b64(63) } },
      { Confirm: { ta: b64(64), sealed: 'not base64!' } },
      { Confirm: { ta: b64(64), sealed: b64(5000) } },
      { Fail: { code: 'lower' } },
      [],
      'Start',
    ]) {
      expect(() => decodePairMessage(enc(bad))).toThrow(PairMessageError);
    }
    expect(() => decodePairMessage(enc({ Nope: {} }))).toThrow(expect.objectContaining({ code: 'ERR_PAIR_MESSAGE_UNKNOWN' }));
    expect(() => decodePairMessage(Uint8Array.from([0xff, 0xfe]))).toThrow(PairMessageError);
  });
});
