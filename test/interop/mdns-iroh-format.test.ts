/**
 * mDNS in iroh's format (swarm-discovery, which iroh's mDNS lookup uses). `@number0/iroh`
 * exposes no mDNS lookup, so instead of a live iroh endpoint:
 *
 * - an iroh answer reconstructed byte by byte as swarm-discovery's `make_response` builds it
 *   with hickory (authoritative response, id 0, no question, no PTR; SRV
 *   `<inst>._irohv1._udp.local → <inst>-<port>.local`, TXT `relay=` / `user-data=` under the
 *   same name, A and AAAA additionals for the target, TTL 0, names compressed as hickory
 *   does) is sent over UDP to a running MdnsDiscovery, which must report the peer with both
 *   addresses, the relay and the user-data;
 * - our answer is checked against every rule swarm-discovery's receiver applies before it
 *   accepts a peer (class IN; answer owner's base name the service, first label the
 *   instance; SRV target's base name `local.`; A/AAAA additionals named as the target), and
 *   our query against its query rules (class IN, type PTR, name the service).
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/keys.ts';
import { SocketAddr } from '../../src/identity/socket-addr.ts';
import { RelayUrl } from '../../src/identity/relay-url.ts';
import { CLASS_IN, decodeDnsMessage, FLAG_AUTHORITATIVE, FLAG_RESPONSE, TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV, TYPE_TXT } from '../../src/discovery/dns.ts';
import { encodeMdnsAnswer, encodeMdnsQuery, MDNS_SERVICE, mdnsInstance, MdnsDiscovery, parseMdnsAnswer } from '../../src/discovery/mdns.ts';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const label = (s: string): number[] => [s.length, ...ascii(s)];
const u16 = (n: number): number[] => [n >> 8, n & 0xff];

/** An answer laid out as hickory writes swarm-discovery's response (compression pointers included). */
function irohAnswer(inst: string, port: number, v4: number[], v6: number[], relay: string, userData: string): Uint8Array {
  const b: number[] = [];
  // Header: id 0, QR + AA, counts: 0 questions, 2 answers, 0 authority, 2 additionals.
  b.push(0, 0, 0x84, 0x00, ...u16(0), ...u16(2), ...u16(0), ...u16(2));
  // Answer 1: SRV. Owner <inst>._irohv1._udp.local.
  const ownerAt = b.length;
  b.push(...label(inst));
  const serviceAt = b.length;
  b.push(...label('_irohv1'), ...label('_udp'));
  const localAt = b.length;
  b.push(...label('local'), 0);
  b.push(...u16(TYPE_SRV), ...u16(CLASS_IN), 0, 0, 0, 0);
  const target = label(`${inst}-${port}`);
  const rdata = [...u16(0), ...u16(0), ...u16(port), ...target, 0xc0 | (localAt >> 8), localAt & 0xff];
  const targetAt = b.length + 2 + 6;
  b.push(...u16(rdata.length), ...rdata);
  void serviceAt;
  // Answer 2: TXT under the same owner (a pointer to it).
  const strings = [ascii(`relay=${relay}`), ascii(`user-data=${userData}`)];
  const txt = strings.flatMap((s) => [s.length, ...s]);
  b.push(0xc0 | (ownerAt >> 8), ownerAt & 0xff, ...u16(TYPE_TXT), ...u16(CLASS_IN), 0, 0, 0, 0, ...u16(txt.length), ...txt);
  // Additionals: A and AAAA for the target (a pointer to the SRV target).
  b.push(0xc0 | (targetAt >> 8), targetAt & 0xff, ...u16(TYPE_A), ...u16(CLASS_IN), 0, 0, 0, 0, ...u16(4), ...v4);
  b.push(0xc0 | (targetAt >> 8), targetAt & 0xff, ...u16(TYPE_AAAA), ...u16(CLASS_IN), 0, 0, 0, 0, ...u16(16), ...v6);
  return new Uint8Array(b);
}

describe('mDNS in iroh\'s format', () => {
  it('a reconstructed iroh answer, sent over UDP, is heard with its addresses, relay and user-data', async () => {
    const key = SecretKey.generate();
    const inst = mdnsInstance(key.public());
    expect(inst).toMatch(/^[a-z2-7]{52}$/);
    const v6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    const bytes = irohAnswer(inst, 51234, [10, 1, 2, 3], v6, 'https://relay.example.org./', 'pair:0a0b0c0d');
    // Parsed directly.
    const [peer] = parseMdnsAnswer(decodeDnsMessage(bytes));
    expect(peer!.id.equals(key.public())).toBe(true);
    expect(peer!.addrs.map(String).sort()).toEqual(['10.1.2.3:51234', '[fd00::7]:51234']);
    expect(peer!.userData).toBe('pair:0a0b0c0d');
    expect(peer!.relay?.toString()).toBe(RelayUrl.parse('https://relay.example.org./').toString());
    // And through a running MdnsDiscovery's socket.
    const port = 20000 + Math.floor(Math.random() * 20000);
    const mdns = await MdnsDiscovery.start({ id: SecretKey.generate().public(), ports: () => ({}), port });
    closers.push(() => mdns.close());
    const tx = dgram.createSocket('udp4');
    closers.push(() => tx.close());
    const heard = mdns.resolve(key.public(), AbortSignal.timeout(30_000));
    const timer = setInterval(() => tx.send(bytes, port, '127.0.0.1'), 200);
    closers.push(() => clearInterval(timer));
    const addr = await heard;
    expect(addr?.directAddresses.map(String).sort()).toEqual(['10.1.2.3:51234', '[fd00::7]:51234']);
    // Without A/AAAA the peer is dropped (as swarm-discovery drops it).
    const noAddrs = decodeDnsMessage(bytes);
    expect(parseMdnsAnswer({ ...noAddrs, additionals: [] })).toEqual([]);
  });

  it('our answer and query pass every check swarm-discovery\'s receiver makes', () => {
    const key = SecretKey.generate();
    const inst = mdnsInstance(key.public());
    const bytes = encodeMdnsAnswer({ id: key.public(), addrs: [SocketAddr.parse('192.168.1.5:4433'), SocketAddr.parse('[fd00::5]:4434')], relay: RelayUrl.parse('https://r.example/'), userData: 'pair:01020304' });
    const m = decodeDnsMessage(bytes);
    expect(m.id).toBe(0);
    expect(m.flags & (FLAG_RESPONSE | FLAG_AUTHORITATIVE)).toBe(FLAG_RESPONSE | FLAG_AUTHORITATIVE);
    expect(m.questions).toEqual([]);
    expect(m.answers.some((r) => r.data.type === TYPE_PTR)).toBe(false);
    const targets = new Set<string>();
    for (const r of m.answers) {
      expect(r.class).toBe(CLASS_IN);
      expect(r.cacheFlush).toBeUndefined();
      expect(r.ttl).toBe(0);
      expect(r.name).toBe(`${inst}.${MDNS_SERVICE}`);
      if (r.data.type === TYPE_SRV && 'target' in r.data) {
        expect(r.data.target).toBe(`${inst}-${r.data.port}.local`);
        targets.add(r.data.target);
      }
    }
    expect(targets.size).toBe(2);
    const txt = m.answers.find((r) => r.data.type === TYPE_TXT)!;
    expect('strings' in txt.data && txt.data.strings.map((s) => Buffer.from(s).toString())).toEqual(['relay=https://r.example/', 'user-data=pair:01020304']);
    for (const r of m.additionals) {
      expect(r.class).toBe(CLASS_IN);
      expect(r.ttl).toBe(0);
      expect(targets.has(r.name)).toBe(true);
      expect([TYPE_A, TYPE_AAAA]).toContain(r.data.type);
    }
    const q = decodeDnsMessage(encodeMdnsQuery());
    expect(q.flags & FLAG_RESPONSE).toBe(0);
    expect(q.questions).toEqual([{ name: MDNS_SERVICE, type: TYPE_PTR, class: CLASS_IN }]);
    // Round trip through our own parser.
    expect(parseMdnsAnswer(m)[0]!.addrs.map(String).sort()).toEqual(['192.168.1.5:4433', '[fd00::5]:4434']);
  });
});
