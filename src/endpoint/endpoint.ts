/**
 * Node's `Endpoint`: {@link EndpointBase} on the Node platform (UDP sockets and relays). The
 * endpoint itself, its options, events and `Incoming` are in `endpoint-base.ts`; the browser's
 * `Endpoint` (relay-only) is in `src/browser.ts`.
 *
 * @module
 */
import { EndpointBase, type EndpointOptions } from './endpoint-base.ts';
import { nodePlatform } from './node-platform.ts';

export { Incoming, type ConnectOptions, type EndpointEvents, type EndpointOptions, type IncomingHandshake } from './endpoint-base.ts';

export class Endpoint extends EndpointBase {
  /** Bind an endpoint: UDP sockets (default `0.0.0.0:0` and `[::]:0`) and relays. */
  static override bind(options: EndpointOptions = {}): Promise<Endpoint> {
    return EndpointBase.bindWith(nodePlatform, options, (parts) => new Endpoint(parts));
  }
}
