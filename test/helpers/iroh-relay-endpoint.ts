/**
 * A real iroh 1.0 endpoint (`@number0/iroh`, minimal preset) bound to every interface, whose
 * only relay is the sdnet relay at `relayUrl`. The relay goes in without a QUIC port, so iroh
 * runs no QUIC address discovery (it could not anyway: iroh's QAD needs a WebPKI certificate,
 * holepunch.md §5.3) and knows only its local addresses. Shared by the netns test's iroh peer
 * and `bench/holepunch`'s.
 *
 * @module
 */
import iroh from '@number0/iroh';

/** Bind it (not yet online); `alpns`: the protocols it accepts (none: dial only). */
export function bindIrohWithRelay(relayUrl: string, alpns: number[][] = []): Promise<iroh.Endpoint> {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  b.bindAddr('0.0.0.0:0');
  const map = iroh.RelayMap.empty();
  map.insert({ url: relayUrl }); // no quicPort: no QAD against this relay
  b.relayMode(iroh.RelayMode.custom(map));
  if (alpns.length > 0) b.alpns(alpns);
  return b.bind();
}
