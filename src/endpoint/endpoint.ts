/**
 * Node's `Endpoint`: {@link EndpointBase} on the Node platform (UDP sockets and relays). The
 * endpoint itself, its options, events and `Incoming` are in `endpoint-base.ts`; the browser's
 * `Endpoint` (relay-only) is in `src/browser.ts`.
 *
 * @module
 */
import { EndpointBase, type EndpointOptions } from './endpoint-base.ts';
import { nodePlatform } from './node-platform.ts';
import { RelayUrl } from '../identity/relay-url.ts';
import { QAD_ALPN, QAD_CLIENT_SETTINGS, QadClient } from './qad.ts';
import type { PemOrDer } from './x509.ts';

export { Incoming, type ConnectOptions, type EndpointEvents, type EndpointOptions, type IncomingHandshake } from './endpoint-base.ts';

export class Endpoint extends EndpointBase {
  #qad: QadClient | undefined;

  /** Bind an endpoint: UDP sockets (default `0.0.0.0:0` and `[::]:0`) and relays. */
  static override async bind(options: EndpointOptions = {}): Promise<Endpoint> {
    const endpoint = await EndpointBase.bindWith(nodePlatform, options, (parts) => new Endpoint(parts));
    const relays = (options.relays ?? []).map((u) => (u instanceof RelayUrl ? u : RelayUrl.parse(u)));
    if (options.qad && relays.length > 0) endpoint.#startQad(options, relays);
    return endpoint;
  }

  /** QUIC address discovery against our relays (`qad.ts`). */
  #startQad(options: EndpointOptions, relays: RelayUrl[]): void {
    const qad = new QadClient(
      {
        dial: (addr, serverName, verify, signal) => this.dialUnannounced(addr, QAD_ALPN, serverName, verify, QAD_CLIENT_SETTINGS, signal),
        hasFamily: (family) => this.hasUdpFamily(family),
        onChange: () => this.setReflexiveAddresses(qad.addresses()),
      },
      { ...(options.qad === true || options.qad === undefined || options.qad === false ? {} : options.qad), ...(options.relayTls?.ca !== undefined ? { relayCa: options.relayTls.ca as PemOrDer | PemOrDer[] } : {}) },
    );
    this.#qad = qad;
    qad.start(relays);
  }

  override async close(options: { graceMs?: number } = {}): Promise<void> {
    this.#qad?.close();
    await super.close(options);
  }
}
