/** fast-check arbitraries for identity and addressing values. */
import fc from 'fast-check';
import { EndpointAddr, SecretKey, SocketAddr } from '../../src/identity/index.ts';

export const secretBytes = fc.uint8Array({ minLength: 32, maxLength: 32 });

export const endpointId = secretBytes.map((b) => SecretKey.fromBytes(b).public());

const port = fc.oneof(fc.constantFrom(0, 1, 65535), fc.integer({ min: 0, max: 65535 }));

export const ipv4Addr = fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), port).map(([ip, p]) => SocketAddr.fromParts(ip, p));

/** IPv6 addresses with many zero groups, IPv4-mapped ones and fully random ones. */
export const ipv6Bytes = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0x2001, 0xdb8, 0xfe80), { minLength: 8, maxLength: 8 }).map((words) => {
    const b = new Uint8Array(16);
    words.forEach((w, i) => {
      b[2 * i] = w >> 8;
      b[2 * i + 1] = w & 0xff;
    });
    return b;
  }),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((v4) => Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4])),
);

export const ipv6Addr = fc.tuple(ipv6Bytes, port).map(([ip, p]) => SocketAddr.fromParts(ip, p));

export const socketAddr = fc.oneof(ipv4Addr, ipv6Addr);

/** Host labels; none with the IDNA `xn--` prefix, most of which are not valid IDNA (iroh and we refuse them: test/interop/iroh-identity.test.ts). */
const label = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]$/).filter((l) => !/^xn--/i.test(l));

/** Relay URLs in assorted spellings that normalisation must agree on. */
export const relayUrlText = fc
  .tuple(
    fc.constantFrom('http', 'https', 'HTTP', 'Https'),
    fc.array(label, { minLength: 1, maxLength: 3 }),
    fc.boolean(),
    fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    fc.constantFrom('', '/', '/relay', '/a/b/'),
  )
  .map(([scheme, labels, trailingDot, p, path]) => `${scheme}://${labels.join('.')}${trailingDot ? '.' : ''}${p === undefined ? '' : `:${p}`}${path}`);

export const customAddr = fc.record({
  id: fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
  data: fc.uint8Array({ maxLength: 40 }),
});

export const endpointAddr = fc
  .tuple(endpointId, fc.array(relayUrlText, { maxLength: 3 }), fc.array(socketAddr, { maxLength: 6 }), fc.array(customAddr, { maxLength: 2 }))
  .map(([id, relayUrls, directAddresses, customAddresses]) => EndpointAddr.from({ id, relayUrls, directAddresses, customAddresses }));
