/**
 * A child process for `test/netns/qad.test.ts`: an sdnet `Endpoint` bound to every interface
 * with one relay and QUIC address discovery on, run inside a site's host namespace.
 *
 * ```sh
 * node qad-peer.ts '<relay url>' <qad port>
 * ```
 *
 * stdout, one JSON line each: `{"event":"reflexive","bound","reflexive","direct"}` once a
 * relay reported our public address (then exits 0), or `{"event":"error","message"}` (exit 1).
 */
import { Endpoint } from '../../src/endpoint/index.ts';

const [url, port] = process.argv.slice(2);
const ep = await Endpoint.bind({ bindAddr: '0.0.0.0:0', relays: [url!], qad: { port: Number(port) } });
try {
  const { addresses } = await ep.next('reflexive-addresses', { filter: (e) => e.addresses.length > 0, signal: AbortSignal.timeout(60_000) });
  const line = { event: 'reflexive', bound: ep.boundSockets.map(String), reflexive: addresses.map(String), direct: ep.addr().directAddresses.map(String) };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  await ep.close({ graceMs: 100 });
} catch (err) {
  process.stdout.write(`${JSON.stringify({ event: 'error', message: (err as Error).message })}\n`);
  process.exitCode = 1;
  await ep.close({ graceMs: 100 });
}
