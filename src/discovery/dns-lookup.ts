/**
 * Resolve ids over DNS as iroh's `DnsAddressLookup` does: a TXT query for
 * `_iroh.<z32>.<origin>` (iroh-wire §6.2) to a given DNS server over UDP, e.g. sdnet-relay
 * started with `--dns-origin`.
 *
 * @module
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import type { PublicKey } from '../identity/keys.ts';
import { SocketAddr } from '../identity/socket-addr.ts';
import { CLASS_IN, decodeDnsMessage, encodeDnsMessage, FLAG_RESPONSE, TYPE_TXT } from './dns.ts';
import type { AddressLookup } from './lookup.ts';
import { IROH_TXT_LABEL, irohTxtStrings, parseInfoTxt, z32 } from './pkarr.ts';

export interface DnsLookupOptions {
  /** The DNS server, `ip:port` or `[ipv6]:port`. */
  readonly server: string;
  /** The zone the records live in, e.g. `dns.iroh.link`. */
  readonly origin: string;
  /** Query retries within the resolve's deadline (default every 1 s). */
  readonly retryMs?: number;
}

export class DnsLookup implements AddressLookup {
  readonly name = 'dns';
  readonly #server: SocketAddr;
  readonly #origin: string;
  readonly #retryMs: number;

  constructor(options: DnsLookupOptions) {
    this.#server = SocketAddr.parse(options.server);
    this.#origin = options.origin.replace(/\.$/, '');
    this.#retryMs = options.retryMs ?? 1000;
  }

  resolve(id: PublicKey, signal: AbortSignal): Promise<EndpointAddr | undefined> {
    const qid = Math.floor(Math.random() * 0x10000);
    const name = `${IROH_TXT_LABEL}.${z32(id)}.${this.#origin}`;
    const query = encodeDnsMessage({ id: qid, flags: 0x0100, questions: [{ name, type: TYPE_TXT, class: CLASS_IN }] });
    const host = this.#server.toString().replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const sock = dgram.createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    return new Promise((resolve) => {
      let done = false;
      const finish = (v: EndpointAddr | undefined): void => {
        if (done) return;
        done = true;
        clearInterval(timer);
        signal.removeEventListener('abort', onAbort);
        sock.close();
        resolve(v);
      };
      const onAbort = (): void => finish(undefined);
      const send = (): void => sock.send(query, this.#server.port, host);
      sock.on('error', () => finish(undefined));
      sock.on('message', (msg) => {
        try {
          const m = decodeDnsMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
          if (m.id !== qid || (m.flags & FLAG_RESPONSE) === 0) return;
          // NXDOMAIN or no record: this lookup knows nothing.
          const info = parseInfoTxt(id, irohTxtStrings(m, id, this.#origin));
          const addr = EndpointAddr.from({ id, relayUrls: [...info.relayUrls], directAddresses: [...info.directAddresses] });
          finish(addr.isEmpty ? undefined : addr);
        } catch {
          // not an answer: keep waiting
        }
      });
      const timer = setInterval(send, this.#retryMs);
      timer.unref();
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) finish(undefined);
      else send();
    });
  }
}
