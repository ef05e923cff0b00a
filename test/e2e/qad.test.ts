/**
 * QUIC address discovery end to end on loopback: `sdnet-relay` serves `/iroh-qad/0` on a UDP
 * port next to its HTTP port, and an endpoint with `qad` learns the address its UDP socket is
 * seen from (here its own 127.0.0.1:port: no NAT on loopback; the NAT case is in
 * test/netns/qad.test.ts). An https relay's certificate is checked against the trust anchors;
 * a plain-http relay's self-signed one is not. The probe connections are not peer
 * connections: the endpoint does not announce them.
 *
 * iroh itself cannot be a client here: it checks the relay's QAD certificate against public
 * roots (iroh-wire §1.11), and a test relay has none.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint, type Connection } from '../../src/endpoint/index.ts';
import { OTHER_CA_PEM, TEST_CA_PEM, TEST_LEAF_CERT_PEM, TEST_LEAF_KEY_PEM } from '../helpers/relay-tls-fixture.ts';
import { scrape, startTestRelay, until } from '../helpers/relay-test-utils.ts';
import type { RelayServerHandle } from '../../relay-server/src/index.ts';

const metric = async (r: RelayServerHandle, name: string): Promise<number> => (await scrape(r)).get(name) ?? 0;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(options: Parameters<typeof startTestRelay>[0] = {}): Promise<RelayServerHandle> {
  const r = await startTestRelay({ qad: { port: 0 }, ...options });
  cleanups.push(() => r.close({ graceful: false }));
  expect(r.qadPort).toBeGreaterThan(0);
  return r;
}

async function endpoint(r: RelayServerHandle, extra: Partial<Parameters<typeof Endpoint.bind>[0]> = {}): Promise<Endpoint> {
  const ep = await Endpoint.bind({ bindAddr: '127.0.0.1:0', relays: [r.url], qad: { port: r.qadPort! }, ...extra });
  cleanups.push(() => ep.close({ graceMs: 100 }));
  return ep;
}

describe('QUIC address discovery through sdnet-relay', () => {
  it('https relay: the endpoint learns the address its socket is seen from, the certificate checked against the CA', async () => {
    const r = await relay({ tls: { cert: TEST_LEAF_CERT_PEM, key: TEST_LEAF_KEY_PEM } });
    const ep = await Endpoint.bind({ bindAddr: '127.0.0.1:0', relays: [r.url], relayTls: { ca: TEST_CA_PEM }, qad: { port: r.qadPort! } });
    cleanups.push(() => ep.close({ graceMs: 100 }));
    const opened: Connection[] = [];
    ep.on('connection-opened', (e) => void opened.push(e.connection));
    const { addresses } = await ep.next('reflexive-addresses', { filter: (e) => e.addresses.length > 0, signal: AbortSignal.timeout(30_000) });
    const own = ep.boundSockets[0]!.toString();
    expect(addresses.map(String)).toEqual([own]);
    expect(ep.reflexiveAddresses().map(String)).toEqual([own]);
    expect(ep.addr().directAddresses.map(String)).toContain(own);
    expect(await metric(r, 'relay_qad_connections')).toBe(1);
    // The probe is not a peer connection.
    expect(opened).toEqual([]);
  });

  it('https relay with a certificate from another CA: no observation is taken, the probe fails', async () => {
    const r = await relay({ tls: { cert: TEST_LEAF_CERT_PEM, key: TEST_LEAF_KEY_PEM } });
    const ep = await Endpoint.bind({ bindAddr: '127.0.0.1:0', relays: [r.url], relayTls: { ca: OTHER_CA_PEM }, qad: { port: r.qadPort! } });
    cleanups.push(() => ep.close({ graceMs: 100 }));
    let events = 0;
    ep.on('reflexive-addresses', () => void events++);
    await until(async () => (await metric(r, 'relay_qad_accepted')) >= 1, 'the relay to see the probe', 30_000);
    await until(async () => (await metric(r, 'relay_qad_connections')) === 0, 'the refused probe to be gone', 30_000);
    expect(ep.reflexiveAddresses()).toEqual([]);
    expect(events).toBe(0);
  });

  it('plain-http relay: a self-signed QAD certificate, accepted (the relay itself is unauthenticated); the observation goes when the relay does', async () => {
    const r = await relay();
    const ep = await endpoint(r);
    const own = ep.boundSockets[0]!.toString();
    await ep.next('reflexive-addresses', { filter: (e) => e.addresses.length > 0, signal: AbortSignal.timeout(30_000) });
    expect(ep.reflexiveAddresses().map(String)).toEqual([own]);
    const gone = ep.next('reflexive-addresses', { filter: (e) => e.addresses.length === 0, signal: AbortSignal.timeout(60_000) });
    await r.close({ graceful: false });
    await gone;
    expect(ep.reflexiveAddresses()).toEqual([]);
  });

  it('the relay holds at most maxConnections probes; more are refused and counted', async () => {
    const r = await relay({ qad: { port: 0, maxConnections: 1 } });
    const first = await endpoint(r);
    await first.next('reflexive-addresses', { filter: (e) => e.addresses.length > 0, signal: AbortSignal.timeout(30_000) });
    const second = await endpoint(r);
    await until(async () => (await metric(r, 'relay_qad_refused')) >= 1, 'the second probe to be refused', 30_000);
    expect(second.reflexiveAddresses()).toEqual([]);
    expect(first.reflexiveAddresses().length).toBe(1);
    expect(await metric(r, 'relay_qad_connections')).toBe(1);
  });

  it('a QAD client cannot open a stream (the service allows none), and the service keeps serving others', async () => {
    const r = await relay();
    // A generic X.509 QUIC client speaking /iroh-qad/0 as a hostile peer would.
    const ep = await Endpoint.bind({ bindAddr: '127.0.0.1:0', x509: { certificateChain: TEST_LEAF_CERT_PEM, privateKey: TEST_LEAF_KEY_PEM, verifyPeer: () => true } });
    cleanups.push(() => ep.close({ graceMs: 100 }));
    const c = await ep.connect(`127.0.0.1:${r.qadPort}`, '/iroh-qad/0', { signal: AbortSignal.timeout(30_000) });
    // The server allows 0 streams: opening one waits for credit that never comes.
    const opening = c.openBi({ signal: AbortSignal.timeout(2_000) }).then(
      () => 'opened',
      () => 'blocked',
    );
    expect(await opening).toBe('blocked');
    c.close(0, 'done');
    const ok = await endpoint(r);
    await ok.next('reflexive-addresses', { filter: (e) => e.addresses.length > 0, signal: AbortSignal.timeout(30_000) });
  });
});
