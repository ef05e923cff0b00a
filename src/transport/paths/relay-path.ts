/**
 * A path through a relay: datagrams to and from one endpoint id by way of one relay URL, as
 * the QUIC core sees it (iroh-wire §3.5: iroh presents these as fake addresses to noq; we
 * give the core an address object whose `key` it compares).
 *
 * @module
 */
import type { PublicKey } from '../../identity/keys.ts';
import type { RelayUrl } from '../../identity/relay-url.ts';
import type { PathAddr } from '../quic/connection/types.ts';

export class RelayPath implements PathAddr {
  readonly kind = 'relay' as const;
  readonly relayed = true;
  readonly key: string;
  /** Every relayed path counts as one host for RTT purposes: the relay. */
  readonly host: string;
  readonly url: RelayUrl;
  readonly endpointId: PublicKey;

  constructor(url: RelayUrl, endpointId: PublicKey) {
    this.url = url;
    this.endpointId = endpointId;
    this.host = `relay:${url.toString()}`;
    this.key = `relay:${url.toString()}|${endpointId.toString()}`;
  }

  toString(): string {
    return `${this.url.toString()} → ${this.endpointId.fmtShort()}`;
  }
}
