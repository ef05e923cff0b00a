/**
 * Test fixture: make two data dirs paired with each other through the public registry API
 * (what the pairing protocol does at its end), with a fixed or given link key. Run it while
 * no service runs on either dir (the service holds the registry while it runs).
 *
 * ```ts
 * const { a, b, linkKey } = await pairDataDirs(dirA, dirB, { nameA: 'alice', nameB: 'bob', relay: url });
 * ```
 */
import { EndpointAddr } from '../../src/identity/endpoint-addr.ts';
import { DeviceRegistry } from '../../src/service/device-registry.ts';
import { NetworkIdentity } from '../../src/service/identity.ts';

/** The link key fixtures use unless told otherwise (32 bytes, 0x5a…). */
export const FIXTURE_LINK_KEY = new Uint8Array(32).fill(0x5a);

export interface PairedFixture {
  a: NetworkIdentity;
  b: NetworkIdentity;
  linkKey: Uint8Array;
}

export async function pairDataDirs(
  dirA: string,
  dirB: string,
  options: { nameA?: string; nameB?: string; linkKey?: Uint8Array; relay?: string; addrA?: readonly string[]; addrB?: readonly string[] } = {},
): Promise<PairedFixture> {
  const { identity: a } = await NetworkIdentity.init(dirA, { name: options.nameA ?? 'alice' });
  const { identity: b } = await NetworkIdentity.init(dirB, { name: options.nameB ?? 'bob' });
  const linkKey = options.linkKey ?? FIXTURE_LINK_KEY;
  const relays = options.relay ? [options.relay] : [];
  for (const [self, peer, peerAddrs] of [
    [dirA, b, options.addrB ?? []],
    [dirB, a, options.addrA ?? []],
  ] as const) {
    const registry = await DeviceRegistry.open(self);
    registry.pair({ id: peer.endpointId, info: peer.info, linkKey, addr: EndpointAddr.from({ id: peer.endpointId, relayUrls: relays, directAddresses: peerAddrs }) });
    await registry.close();
  }
  return { a, b, linkKey };
}
