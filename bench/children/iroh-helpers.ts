/**
 * Real iroh 1.0 endpoints through `@number0/iroh` for the benchmark children
 * (perf-anchors.md §3.3): minimal preset, relays disabled, bound to 127.0.0.1, dialled by
 * direct address. Every byte crosses the binding as `Array<number>`.
 */
import iroh from '@number0/iroh';
import { closeQuietly, utf8 } from './common.ts';

export { iroh };

export const toArray = (bytes: Uint8Array): number[] => Array.from(bytes);

export async function bindIroh(alpns: readonly string[]): Promise<iroh.Endpoint> {
  const builder = iroh.Endpoint.builder();
  iroh.presetMinimal(builder);
  builder.alpns(alpns.map((a) => toArray(utf8(a))));
  builder.relayMode(iroh.RelayMode.disabled());
  builder.bindAddr('127.0.0.1:0');
  return builder.bind();
}

/** The endpoint's loopback socket address (`127.0.0.1:port`). */
export function irohLoopbackAddr(endpoint: iroh.Endpoint): string {
  const addr = endpoint.boundSockets().find((s) => s.startsWith('127.'));
  if (addr === undefined) throw new Error(`iroh endpoint has no loopback socket: ${endpoint.boundSockets().join(', ')}`);
  return addr;
}

export function irohAddr(endpoint: iroh.Endpoint): iroh.EndpointAddr {
  return new iroh.EndpointAddr(endpoint.id(), null, [irohLoopbackAddr(endpoint)]);
}

/**
 * Serve every incoming connection: accept it, then answer the first bytes of its first bi
 * stream with the same bytes (the 1-byte echo of the connect benchmarks).
 */
export function serveIrohEcho(endpoint: iroh.Endpoint): void {
  void (async () => {
    for (;;) {
      let incoming: iroh.Incoming | null;
      try {
        incoming = await endpoint.acceptNext();
      } catch {
        return;
      }
      if (incoming === null) return;
      void (async () => {
        try {
          const conn = await (await incoming.accept()).connect();
          const bi = await conn.acceptBi();
          const data = await bi.recv.readExact(1);
          await bi.send.writeAll(data);
          await bi.send.finish();
          await conn.closed();
        } catch {
          // The client closes the connection when it has its answer.
        }
      })();
    }
  })();
}

export const closeIroh = (endpoint: iroh.Endpoint): Promise<void> => closeQuietly(() => endpoint.close());
