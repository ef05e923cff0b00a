/**
 * Proxy pairing ("vouching"): A, paired with B and C by code, introduces B to C; C confirms
 * (or auto-accepts, or refuses, or lets it time out); B and C then hold each other as paired
 * with one link key A never saw, and exchange a message. Introductions from a device that is
 * not paired, with a signature that does not verify under the voucher's stored key, and a
 * vouched hello for an introduction that was never made, are refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint } from '../../src/endpoint/endpoint.ts';
import { EndpointAddr } from '../../src/identity/endpoint-addr.ts';
import { SecretKey } from '../../src/identity/keys.ts';
import { FrameReader, FrameWriter } from '../../src/protocols/framing.ts';
import { decodePairMessage, encodePairMessage, PAIR_ALPN } from '../../src/protocols/pairing/messages.ts';
import { introductionBytes, wireDevice } from '../../src/protocols/pairing/vouch.ts';
import type { Core } from '../../src/service/index.ts';
import { failOnEscapes, until } from '../helpers/relay-test-utils.ts';
import { collectProgress, Scope } from '../helpers/pairing.ts';
import type { PairingOptions } from '../../src/protocols/pairing/module.ts';

failOnEscapes();
const scope = new Scope();
afterEach(() => scope.cleanupAll());

async function pairByCode(initiator: Core, joiner: Core): Promise<void> {
  const invite = await initiator.networking.startPairingAsInitiator();
  await joiner.networking.startPairingAsJoiner(invite.qr!);
  await invite.paired;
}

async function triangle(cOptions: PairingOptions = {}): Promise<{ a: Core; b: Core; c: Core }> {
  const a = await scope.device('alice');
  const b = await scope.device('bob');
  const c = await scope.device('carol', { pairing: cOptions });
  await pairByCode(a, b);
  await pairByCode(a, c);
  return { a, b, c };
}

const id = (x: Core): string => x.networking.identity.endpointId.toString();

describe('vouching', () => {
  it('A introduces B to C; C confirms; B and C are paired with one link key and exchange a message', async () => {
    const { a, b, c } = await triangle();
    const pc = collectProgress(c);
    // Carol is asked; she accepts when the request shows up.
    const asked = c.networking.next('pairing-progress', { filter: (p) => p.stage === 'vouch-requested' });
    const vouching = a.networking.vouch(id(b), [id(c)]);
    const request = await asked;
    expect(request).toMatchObject({ role: 'target', peer: { endpointId: id(b), name: 'bob' }, voucher: { endpointId: id(a), name: 'alice' } });
    expect(c.networking.confirmVouch(request.sessionId, true)).toBe(true);
    expect(await vouching).toEqual([{ target: { endpointId: id(c), name: 'carol' }, accepted: true }]);
    expect(b.networking.registry.get(id(c))).toMatchObject({ name: 'carol', state: expect.stringMatching(/paired|connected/) });
    expect(c.networking.registry.get(id(b))).toMatchObject({ name: 'bob', state: expect.stringMatching(/paired|connected/) });
    const kb = b.networking.registry.linkKey(id(c))!;
    const kc = c.networking.registry.linkKey(id(b))!;
    expect(Buffer.from(kb).toString('hex')).toBe(Buffer.from(kc).toString('hex'));
    // Not a key A holds with either of them.
    for (const k of [a.networking.registry.linkKey(id(b))!, a.networking.registry.linkKey(id(c))!]) expect(Buffer.from(k).toString('hex')).not.toBe(Buffer.from(kb).toString('hex'));
    expect(pc.map((p) => p.stage)).toEqual(['vouch-requested', 'paired']);
    // B and C talk.
    const got = c.networking.next('message-received');
    await b.networking.sendMessage(id(c), 'hello carol, alice sent me');
    expect(await got).toMatchObject({ payload: 'hello carol, alice sent me', from: { name: 'bob' } });
  });

  it('auto-accept; refusal; an already paired target', async () => {
    const { a, b, c } = await triangle({ autoAcceptVouches: true });
    expect(await a.networking.vouch(id(b), [id(c)])).toEqual([{ target: { endpointId: id(c), name: 'carol' }, accepted: true }]);
    await until(() => c.networking.registry.isPaired(id(b)), 'carol holds bob');
    // Again: C already has B.
    const again = await a.networking.vouch(id(b), [id(c)]);
    expect(again[0]).toMatchObject({ accepted: false, error: { code: 'ERR_VOUCH_REFUSED', message: expect.stringContaining('already paired') } });
    // A refusing target.
    const d = await scope.device('dave');
    await pairByCode(a, d);
    const asked = d.networking.next('pairing-progress', { filter: (p) => p.stage === 'vouch-requested' });
    const vouching = a.networking.vouch(id(b), [id(d)]);
    expect(d.networking.confirmVouch((await asked).sessionId, false)).toBe(true);
    expect((await vouching)[0]).toMatchObject({ accepted: false, error: { code: 'ERR_VOUCH_REFUSED' } });
    expect(d.networking.registry.get(id(b))).toBeUndefined();
    expect(b.networking.registry.get(id(d))).toBeUndefined();
    expect(d.networking.confirmVouch('nope', true)).toBe(false);
  });

  it('refused: an introduction from a peer that is not paired, one signed by another key, a vouched hello for an introduction never made', async () => {
    const { a, b, c } = await triangle({ autoAcceptVouches: true });
    const cAddr = EndpointAddr.from({ id: c.networking.identity.endpointId, directAddresses: c.networking.addr().directAddresses.map(String) });
    const mKey = SecretKey.generate();
    const mallory = await Endpoint.bind({ secretKey: mKey, bindAddr: ['127.0.0.1:0'] });
    scope.add(() => mallory.close({ graceMs: 0 }));
    const exchange = async (msg: Parameters<typeof encodePairMessage>[0]) => {
      const conn = await mallory.connect(cAddr, PAIR_ALPN);
      const bi = await conn.openBi();
      const w = new FrameWriter(bi.writable);
      const r = new FrameReader(bi.readable);
      await w.write(encodePairMessage(msg));
      await w.close();
      const f = await r.readFrame(1 << 16);
      conn.close(0, '');
      return f === undefined ? undefined : decodePairMessage(f);
    };
    const bob = a.networking.registry.get(id(b))!;
    const voucheeWire = wireDevice(b.networking.identity.endpointId, bob.info!, { relayUrls: [], directAddresses: b.networking.addr().directAddresses });
    const now = Date.now();
    // Mallory is not paired with Carol: refused whatever she signs.
    const bySelf = await exchange({ Introduce: { id: 'm1', vouchee: voucheeWire, issued_at: now, sig: mKey.sign(introductionBytes('introduce', 'm1', mallory.id, voucheeWire, cAddr.id, now)).toBytes() } });
    expect(bySelf).toEqual({ Fail: { code: 'ERR_VOUCH_REFUSED' } });
    // Mallory claims to speak for Alice (a signature not by Alice's stored key): the connection
    // is hers (TLS), so it is refused as not paired too; a device that *is* paired but signs
    // wrongly is checked below through A's own connection.
    expect(c.networking.registry.get(mallory.id)).toBeUndefined();
    // A VouchHello for an introduction that never happened, or from the wrong device.
    expect(await exchange({ VouchHello: { id: 'never', voucher: id(a) } })).toEqual({ Fail: { code: 'ERR_VOUCH_REFUSED' } });
    // A real introduction of Bob, accepted by Carol; then Mallory tries to use it.
    expect((await a.networking.vouch(id(b), [id(c)]))[0]!.accepted).toBe(true);
    expect(c.networking.registry.get(mallory.id)).toBeUndefined();

    // A paired device (Bob) whose introduction of Mallory carries a bad signature.
    const mWire = wireDevice(mallory.id, { deviceId: crypto.randomUUID(), name: 'mallory', os: 'linux', osVersion: '1', kind: 'desktop', appVersion: '0' }, { relayUrls: [], directAddresses: [] });
    const bobConn = await b.networking.connect(id(c), PAIR_ALPN);
    const bi = await bobConn.openBi();
    const w = new FrameWriter(bi.writable);
    const r = new FrameReader(bi.readable);
    await w.write(encodePairMessage({ Introduce: { id: 'bad-sig', vouchee: mWire, issued_at: now, sig: mKey.sign(introductionBytes('introduce', 'bad-sig', b.networking.identity.endpointId, mWire, cAddr.id, now)).toBytes() } }));
    await w.close();
    expect(decodePairMessage((await r.readFrame(1 << 16))!)).toEqual({ Fail: { code: 'ERR_VOUCH_REFUSED' } });
    expect(c.networking.registry.get(mallory.id)).toBeUndefined();
  });
});
