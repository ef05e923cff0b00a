/**
 * Runs inside a private network namespace (see `privateNetnsPrefix` in netns.ts): only `lo`
 * exists, and nftables drops every UDP packet on it, so the two iroh endpoints here cannot
 * reach each other directly — every byte between them has to go through our relay (TCP). It
 * starts our relay, two real iroh endpoints that know only that relay, runs the echo and the
 * hashed bulk transfer, and prints one JSON line with what happened, including the relay's
 * `/metrics` and the nftables drop counter.
 *
 * `node relay-iroh-scenario.ts <bytes>`
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startRelayServer } from '../../relay-server/src/index.ts';
import { bindEndpoint, dial, serve } from './relay-iroh-peer.ts';

const IP = ['/usr/sbin/ip', '/sbin/ip'].find((p) => existsSync(p)) ?? 'ip';
const NFT = ['/usr/sbin/nft', '/sbin/nft'].find((p) => existsSync(p)) ?? 'nft';

async function main(): Promise<void> {
  const bytes = Number(process.argv[2] ?? 8 * 1024 * 1024);
  execFileSync(IP, ['link', 'set', 'lo', 'up']);
  execFileSync(NFT, ['-f', '-'], {
    input: 'table inet nodirect {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto udp counter drop\n  }\n}\n',
  });
  const relay = await startRelayServer({ host: '127.0.0.1', port: 0, metrics: { port: 0 }, rateLimit: false });
  const a = await bindEndpoint(relay.url);
  const b = await bindEndpoint(relay.url);
  await Promise.all([a.online(), b.online()]);
  const serving = serve(a);
  const result = await dial(b, relay.url, a.id().toString(), bytes);
  const metrics = await (await fetch(relay.metricsUrl!)).text();
  const nft = execFileSync(NFT, ['list', 'table', 'inet', 'nodirect'], { encoding: 'utf8' });
  const dropped = /counter packets (\d+)/.exec(nft);
  await b.close();
  await a.close();
  await serving.catch(() => undefined);
  await relay.close();
  console.log(JSON.stringify({ ...result, relayUrl: relay.url, metrics, udpPacketsDropped: dropped ? Number(dropped[1]) : -1 }));
  process.exit(0);
}

main().catch((err: unknown) => {
  console.log(JSON.stringify({ event: 'error', message: String(err), stack: (err as Error).stack }));
  process.exit(1);
});
