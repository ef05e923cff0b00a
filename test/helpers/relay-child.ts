/**
 * A relay server in its own process, for tests that measure the relay's memory apart from the
 * clients attacking it. Started with `fork(this file, [JSON options])`; sends
 * `{ url, metricsUrl, port }` once listening, then answers `{ cmd: 'rss' }` with
 * `{ rss }` and `{ cmd: 'stats' }` with the relay's stats; `{ cmd: 'exit' }` closes it.
 */
import { startRelayServer, type RelayServerOptions } from '../../relay-server/src/index.ts';

const options = JSON.parse(process.argv[2] ?? '{}') as RelayServerOptions;
const relay = await startRelayServer({ host: '127.0.0.1', port: 0, metrics: { port: 0 }, ...options });
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'rss') process.send!({ rss: process.memoryUsage.rss() });
  else if (m.cmd === 'stats') process.send!({ stats: relay.stats() });
  else if (m.cmd === 'exit') void relay.close({ graceful: false }).then(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
process.send!({ url: relay.url, metricsUrl: relay.metricsUrl, port: relay.port });
