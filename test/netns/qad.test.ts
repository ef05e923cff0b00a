/**
 * QUIC address discovery through NATs (issue 17 item 4), in network namespaces: the
 * deployable `sdnet-relay` on a public bridge serves `/iroh-qad/0` on UDP 7842; hosts behind
 * routers with the NAT profiles of shared/docs/holepunch.md §5.1 run an endpoint with `qad`
 * and must learn the address their socket is seen from *outside*: their own address where
 * there is no NAT, the router's public address where there is one (whatever port the NAT
 * chose: an EDM NAT picks a random one per destination), and advertise it in `addr()`.
 *
 * Needs root; skips with the reason printed otherwise.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonLines, NatLab, netnsUnavailableReason, type NatProfile } from '../helpers/netns.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] QAD through NATs (netns + nftables): ${reason}`);

const root = fileURLToPath(new URL('../..', import.meta.url));
const RELAY_BIN = `${root}bin/sdnet-relay.js`;
const PEER = `${root}test/helpers/qad-peer.ts`;

const labs: NatLab[] = [];
afterEach(async () => {
  for (const lab of labs.splice(0)) await lab.destroy();
});

describe.skipIf(reason !== undefined)('QUIC address discovery through NATs (root)', () => {
  it('behind no NAT, a full-cone NAT, a home NAT and a strict (EDM) NAT, each host learns its outside address from sdnet-relay', async () => {
    const profiles: NatProfile[] = ['none', 'cone', 'home', 'strict'];
    const lab = await NatLab.create(profiles.map((nat) => ({ name: nat, nat })));
    labs.push(lab);
    const relay = new JsonLines(lab.spawn('public', [process.execPath, RELAY_BIN, '--host', lab.publicAddr, '--port', '3340', '--qad-port', '7842', '--no-metrics', '--log-level', 'warn']));
    const url = await relay.waitText(/^https?:\/\/\S+/, 30_000, 'the relay URL');
    const results = await Promise.all(
      profiles.map(async (nat) => {
        const peer = new JsonLines(lab.spawn(nat, [process.execPath, PEER, url.trim(), '7842']));
        const line = await peer.wait((o) => o.event === 'reflexive' || o.event === 'error', 90_000, `${nat}: a reflexive address`);
        return { nat, line: line as { event: string; bound: string[]; reflexive: string[]; direct: string[]; message?: string } };
      }),
    );
    for (const { nat, line } of results) {
      console.log(`[qad] ${nat}: bound ${line.bound.join(', ')} → seen as ${line.reflexive?.join(', ')}`);
      expect(line.event, `${nat}: ${line.message ?? ''}`).toBe('reflexive');
      const site = lab.sites[nat]!;
      const port = line.bound[0]!.split(':').pop();
      expect(line.reflexive).toHaveLength(1);
      const [ip, seenPort] = line.reflexive[0]!.split(':');
      // Outside, a NATed host is its router's public address; an un-NATed one is itself.
      expect(ip).toBe(nat === 'none' ? site.addr : site.wan);
      if (nat === 'none') expect(seenPort).toBe(port);
      // And it is advertised as a direct address, next to the private one.
      expect(line.direct).toContain(line.reflexive[0]);
      expect(line.direct).toContain(`${site.addr}:${port}`);
    }
  });
});
