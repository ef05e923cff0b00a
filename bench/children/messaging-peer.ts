/**
 * Child of `bench/messaging.ts`: the answering side, in its own process.
 *
 *   node messaging-peer.ts <direct|relay> <relayUrl> <dataDir> <port>
 *
 * Runs the device service of `dataDir` (bound to 127.0.0.1:<port>, or relay-only with no UDP
 * socket at all in relay mode) answering every request with its payload, and next to it a
 * bare QUIC endpoint (same binding) that echoes each bidirectional stream: reads it to its
 * end, writes it back, finishes. Prints {"ready":true,"id":…,"bareTicket":…}; runs until
 * killed.
 */
import { Endpoint, EndpointTicket } from '../../src/index.ts';
import { Core } from '../../src/service/index.ts';
import { emit, runMain, withTimeout } from './common.ts';

export const BARE_ALPN = 'bench/echo/1';

async function serveEcho(ep: Endpoint): Promise<void> {
  for await (const incoming of ep.accept()) {
    void (async () => {
      const conn = await incoming.accept();
      for (;;) {
        const { readable, writable } = await conn.acceptBi();
        void (async () => {
          const parts: Uint8Array[] = [];
          for await (const chunk of readable) parts.push(chunk);
          const w = writable.getWriter();
          for (const p of parts) await w.write(p);
          await w.close();
        })().catch(() => undefined);
      }
    })().catch(() => undefined);
  }
}

process.on('SIGTERM', () => process.exit(0));
runMain(async () => {
  const [mode, relayUrl, dataDir, port] = process.argv.slice(2);
  if ((mode !== 'direct' && mode !== 'relay') || !relayUrl || !dataDir || !port) throw new Error('usage: messaging-peer.ts <direct|relay> <relayUrl> <dataDir> <port>');
  const bind = mode === 'relay' ? [] : [`127.0.0.1:${port}`];
  const core = await Core.init({ dataDir, relays: mode === 'relay' ? [relayUrl] : [], bind });
  core.networking.onRequest(({ payload }) => payload);
  const bare = await Endpoint.bind({ bindAddr: mode === 'relay' ? [] : ['127.0.0.1:0'], alpns: [BARE_ALPN], ...(mode === 'relay' ? { relays: [relayUrl] } : {}) });
  if (mode === 'relay') await withTimeout(Promise.all([core.networking.endpoint.online(), bare.online()]), 10_000, 'online');
  void serveEcho(bare);
  emit({ ready: true, id: core.networking.identity.endpointId.toString(), bareTicket: new EndpointTicket(bare.addr()).toString() });
  await new Promise(() => {});
});
