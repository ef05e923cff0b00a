/**
 * sdnet-relay's optional DNS server (`_iroh.<z32>.<origin>` TXT from the /pkarr records,
 * over UDP and TCP), honest and hostile: a published record is answered with its `relay=`
 * TXT under the queried name (what iroh's DnsAddressLookup reads); an unknown key is
 * NXDOMAIN, another zone REFUSED, garbage FORMERR, a response packet or a flood dropped; a
 * TCP length prefix above the bound closes the connection.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/keys.ts';
import { RelayUrl } from '../../src/identity/relay-url.ts';
import { CLASS_IN, decodeDnsMessage, encodeDnsMessage, FLAG_RESPONSE, TYPE_TXT, type DnsMessage } from '../../src/discovery/dns.ts';
import { encodeInfoDns, irohTxtStrings, parseInfoTxt, pkarrTimestampNow, signPacket, z32 } from '../../src/discovery/pkarr.ts';
import { publishPacket } from '../../src/discovery/pkarr-client.ts';
import { DnsLookup } from '../../src/discovery/dns-lookup.ts';
import { startTestRelay } from '../helpers/relay-test-utils.ts';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ORIGIN = 'dns.sdnet.test';

function udpQuery(port: number, bytes: Uint8Array, timeoutMs = 3_000): Promise<DnsMessage | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(decodeDnsMessage(new Uint8Array(m)));
    });
    s.send(bytes, port, '127.0.0.1');
  });
}

const query = (name: string, id = 0x1234): Uint8Array => encodeDnsMessage({ id, flags: 0x0100, questions: [{ name, type: TYPE_TXT, class: CLASS_IN }] });

describe('pkarr DNS server of sdnet-relay', () => {
  it('answers published records over UDP and TCP; NXDOMAIN, REFUSED and FORMERR otherwise; floods dropped', async () => {
    const relay = await startTestRelay({ dns: { origin: ORIGIN, host: '127.0.0.1', port: 0, queriesPerSecond: 20 }, pkarr: { putsPerSecond: 0 } });
    cleanups.push(() => relay.close({ graceful: false }));
    const port = relay.dns!.port;
    const key = SecretKey.generate();
    const relayUrl = RelayUrl.parse('https://relay.sdnet.test/');
    await publishPacket(`http://127.0.0.1:${relay.port}/pkarr`, key.public(), signPacket(key, encodeInfoDns({ id: key.public(), relayUrls: [relayUrl], directAddresses: [] }), pkarrTimestampNow()));
    const name = `_iroh.${z32(key.public())}.${ORIGIN}`;
    const a = await udpQuery(port, query(name));
    expect(a!.id).toBe(0x1234);
    expect(a!.flags & 0x0f).toBe(0);
    expect(a!.flags & FLAG_RESPONSE).toBe(FLAG_RESPONSE);
    const info = parseInfoTxt(key.public(), irohTxtStrings(a!, key.public(), ORIGIN));
    expect(info.relayUrls.map(String)).toEqual([relayUrl.toString()]);
    // Unknown key, another zone, garbage.
    expect((await udpQuery(port, query(`_iroh.${z32(SecretKey.generate().public())}.${ORIGIN}`)))!.flags & 0x0f).toBe(3);
    expect((await udpQuery(port, query('example.com')))!.flags & 0x0f).toBe(5);
    expect((await udpQuery(port, new Uint8Array([0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12])))!.flags & 0x0f).toBe(1);
    // A response is not answered.
    expect(await udpQuery(port, encodeDnsMessage({ id: 1, flags: FLAG_RESPONSE, questions: [{ name, type: TYPE_TXT, class: CLASS_IN }] }), 1_000)).toBeUndefined();
    // TCP: length-prefixed.
    const tcpAnswer = await new Promise<DnsMessage>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      const q = query(name, 7);
      s.on('error', reject);
      s.on('connect', () => s.write(Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q])));
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          s.destroy();
          resolve(decodeDnsMessage(new Uint8Array(buf.subarray(2, 2 + buf.readUInt16BE(0)))));
        }
      });
    });
    expect(tcpAnswer.id).toBe(7);
    // iroh's DnsAddressLookup, as sdnet does it: resolves the id through this server.
    const viaDns = await new DnsLookup({ server: `127.0.0.1:${port}`, origin: ORIGIN }).resolve(key.public(), AbortSignal.timeout(10_000));
    expect(viaDns?.relayUrls.map(String)).toEqual([relayUrl.toString()]);
    expect(await new DnsLookup({ server: `127.0.0.1:${port}`, origin: ORIGIN, retryMs: 200 }).resolve(SecretKey.generate().public(), AbortSignal.timeout(1_000))).toBeUndefined();
    expect(parseInfoTxt(key.public(), irohTxtStrings(tcpAnswer, key.public(), ORIGIN)).relayUrls).toHaveLength(1);
    // An oversized TCP length closes the connection without an answer.
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => resolve(true));
      s.on('connect', () => s.write(Buffer.from([0xff, 0xff, 1, 2, 3])));
      s.on('data', () => resolve(false));
      s.on('close', () => resolve(true));
    });
    expect(closed).toBe(true);
    // A UDP flood from one address: beyond the rate it is dropped, then served again.
    const s = dgram.createSocket('udp4');
    cleanups.push(() => {
      s.close();
    });
    let answered = 0;
    s.on('message', () => answered++);
    for (let i = 0; i < 200; i++) s.send(query(name, i), port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 1000));
    expect(answered).toBeLessThan(200);
    expect(relay.dns!.stats.rateLimited).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await udpQuery(port, query(name)))?.answers.length).toBeGreaterThan(0);
  });
});
